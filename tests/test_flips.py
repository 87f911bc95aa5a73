"""Flip averaging (``flips``): each mirrored estimate is exactly the model's on the mirrored frames, the average is
the plain mean in float before the 8-bit rounding, for both models, with and without ensembling, on the sparse and
the plain path; the float16 path keeps shape and dtype; bad settings are usage errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retime.errors import UsageError
from retime.interpolate import Interpolator
from retime.interpolate.autotune import Candidate
from retime.pipeline import ModelSettings
from tests.helpers import WEIGHTS, WEIGHTS_46, read_frames, require

MODELS = {"rife-4.6": WEIGHTS_46, "rife-4.2x": WEIGHTS}


@pytest.fixture(scope="module")
def engines() -> dict[str, Interpolator]:
    return {name: Interpolator(weights=require(path, "weights"), device="cpu", model=name, precision="float32")
            for name, path in MODELS.items()}


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """70x90 pixels of the moving bikes (not a multiple of the padding, so mirroring must move the padding)."""
    frames = read_frames("bikes.mp4", [40, 42])
    return tuple(np.ascontiguousarray(f[150:220, 200:290]) for f in frames)


def as_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0


@pytest.mark.parametrize("model", list(MODELS))
def test_the_mirrored_stack_is_the_prepared_mirrored_frame(engines, pair, model):
    """Padded at the bottom and right and (4.2x) encoded anew: bit for bit what prepare() makes of the mirror."""
    engine = engines[model]
    prepared = engine.prepare(pair[0])
    for dims, axis in (((3,), 1), ((2,), 0)):
        want = engine.prepare(np.ascontiguousarray(np.flip(pair[0], axis))).stack
        got = engine._mirrored(prepared, dims)
        assert got.shape == want.shape and torch.equal(got, want), dims
        assert engine._mirrored(prepared, dims) is got  # kept for the next pair


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("scale", [1.0, 2.0])  # the sparse path, and the plain one (scale 2)
def test_flips_average_the_mirrored_estimates_mirrored_back(engines, pair, model, ensemble, scale):
    engine = engines[model]
    a, b = map(as_tensor, pair)
    run = lambda x, y, **kw: engine.interpolate(x, y, [0.5], scale=scale, ensemble=ensemble, **kw)[0]  # noqa: E731
    plain = run(a, b)
    left_right = run(a.flip(2), b.flip(2)).flip(2)
    upside_down = run(a.flip(1), b.flip(1)).flip(1)
    assert (plain - left_right).abs().max() > 1e-3  # the mirror is a different problem for the network
    for flips, want in ((1, (plain + left_right) / 2), (2, (plain + left_right + upside_down) / 3)):
        got = run(a, b, flips=flips)
        assert got.shape == (3, 70, 90) and got.dtype == torch.float32
        # the estimates are clamped to [0, 1] one by one above and only after averaging here: compare where no
        # clamp acted
        inside = [((x > 0) & (x < 1)).all(0) for x in (plain, left_right, upside_down)]
        where = inside[0] & inside[1] & inside[2]
        assert where.float().mean() > 0.9
        assert (got - want)[:, where].abs().max() <= 1e-6, flips


def test_uint8_output_rounds_the_float_average(engines, pair):
    """The average is taken in float before the 8-bit rounding, not of rounded frames."""
    engine = engines["rife-4.6"]
    u8 = engine.interpolate(pair[0], pair[1], [0.5], flips=2, ensemble=True)[0]
    fl = engine.interpolate(as_tensor(pair[0]), as_tensor(pair[1]), [0.5], flips=2, ensemble=True)[0]
    assert u8.shape == (70, 90, 3) and u8.dtype == np.uint8
    assert np.array_equal(u8, (fl * 255).round().byte().permute(1, 2, 0).numpy())


def test_engine_setting_is_the_per_call_default(pair):
    engine = Interpolator(weights=require(WEIGHTS_46, "weights"), device="cpu", model="rife-4.6",
                          precision="float32", flips=1)
    assert engine.flips == 1
    assert np.array_equal(engine.interpolate(*pair, [0.5])[0], engine.interpolate(*pair, [0.5], flips=1)[0])
    assert not np.array_equal(engine.interpolate(*pair, [0.5])[0], engine.interpolate(*pair, [0.5], flips=0)[0])


@pytest.mark.parametrize("model", list(MODELS))
def test_float16_path_keeps_shape_and_dtype(model):
    """CUDA's float16 convolutions, run on the CPU: shapes and dtypes only."""
    half = Interpolator(weights=require(MODELS[model], "weights"), device="cpu", model=model, precision="float16")
    a = torch.rand(3, 64, 96, dtype=torch.float16)
    for ensemble in (False, True):
        out = half.interpolate(a, a.flip(2), [0.25, 0.5], ensemble=ensemble, flips=2)
        assert [o.shape for o in out] == [(3, 64, 96)] * 2
        assert all(o.dtype == torch.float16 and torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("bad", [3, -1, True, 0.5])
def test_bad_flips_are_usage_errors(engines, pair, bad):
    with pytest.raises(UsageError, match="flips"):
        Interpolator(weights=WEIGHTS_46, device="cpu", model="rife-4.6", flips=bad)
    with pytest.raises(UsageError, match="flips"):
        engines["rife-4.6"].interpolate(*pair, [0.5], flips=bad)
    with pytest.raises(UsageError, match="flips"):
        ModelSettings(flips=bad)


def test_flips_reach_the_search_candidates():
    fixed = ModelSettings(quality="best", model="rife-4.6", scale=1.0, ensemble=True, flips=1)
    assert fixed.candidates(720, 1280) == [Candidate("rife-4.6", 1.0, True, 1)]
    assert Candidate("rife-4.6", 1.0, True, 2).label() == "rife-4.6 scale 1 + ensemble + hflip + vflip"
    assert Candidate("rife-4.2x", 1.0, False).to_dict()["flips"] == 0
