"""The model, the engine and the commands on the device that ``RETIME_TEST_DEVICE`` names (tests/conftest.py).

``RETIME_TEST_DEVICE=cuda`` on a machine with CUDA (scripts/gpu_check.sh) runs every test here on the GPU, with
full-size frames; the default, ``cpu``, runs those marked ``gpu(cpu=True)`` on the CPU with small crops (the
CUDA path's float16 forced there, so its dtype handling and these tests' own logic are exercised on every run) and
skips the CUDA-only ones with a reason. On CUDA a test whose weights or PyAV did not travel to the machine is
skipped with a reason naming what is missing; on the CPU missing weights fail, as everywhere else in the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import av, damage, device_from_env, video_facts, write_clip
from retime.interpolate import Interpolator, choose_device
from retime.interpolate.engine import MAX_BATCH_CUDA
from retime.metrics import psnr
from tests.helpers import CLIPS, ROOT, WEIGHTS, WEIGHTS_46, require

MODELS = ["rife-4.6", "rife-4.2x"]
WEIGHT_FILES = {"rife-4.6": WEIGHTS_46, "rife-4.2x": WEIGHTS}
EXIT_USAGE = 2

#: (scale, fast path taken, ensemble): on CUDA every path with and without ensembling; on the CPU, where float16
#: convolutions are slow reference kernels (50 s for one plain-path case), ensembling on the fast path only.
PATHS = [(1.0, True, False), (1.0, True, True), (0.5, True, False), (0.5, True, True), (2.0, False, False),
         (2.0, False, True)]
if device_from_env() == "cpu":
    PATHS = [case for case in PATHS if case[0] == 1.0 or not case[2]]

needs_av = pytest.mark.skipif(av is None, reason="PyAV (av) is not installed here: carry its wheel "
                                                 "(docs/performance.md, GPU)")


# --- helpers ----------------------------------------------------------------------------------------------------


def need_weights(model: str, device: str) -> Path:
    """The model's checkpoint; on CUDA a missing one skips (a device run may carry one file), on the CPU it fails."""
    path = WEIGHT_FILES[model]
    if device == "cuda" and not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} was not carried to this machine")
    return require(path, "weights")


def real_frames(name: str, indices: list[int]) -> list[np.ndarray]:
    """Frames of a clip in assets/clips as (H, W, 3) uint8 RGB: decoded by PyAV, else by OpenCV (the GPU image has
    opencv-python-headless; its YUV->RGB differs a little from PyAV's, which no test here depends on)."""
    path = CLIPS / name
    if not path.is_file():
        if av is None:
            pytest.skip(f"{path.relative_to(ROOT)} was not carried to this machine")
        require(path, "clips")
    wanted, found = set(indices), {}
    if av is not None:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    found[i] = frame.to_ndarray(format="rgb24")
                if i >= max(indices):
                    break
    else:
        cv2 = pytest.importorskip("cv2", reason="neither PyAV nor OpenCV is installed: no decoder for real frames")
        capture = cv2.VideoCapture(str(path))
        for i in range(max(indices) + 1):
            ok, bgr = capture.read()
            if not ok:
                break
            if i in wanted:
                found[i] = np.ascontiguousarray(bgr[:, :, ::-1])
        capture.release()
    return [found[i] for i in indices]


def pair(device: str, *, name: str = "bikes.mp4", indices=(40, 42)) -> tuple[np.ndarray, np.ndarray]:
    """Two real frames: whole on CUDA, a 128x192 crop of the moving part on the CPU (its float16 is slow)."""
    frames = real_frames(name, list(indices))
    if device == "cpu":
        frames = [np.ascontiguousarray(f[72:200, 200:392]) for f in frames]
    return frames[0], frames[1]


_ENGINES: dict[tuple, Interpolator] = {}


def engine(model: str, device: str, precision: str = "auto") -> Interpolator:
    """One engine per (model, device, precision) for the whole module: loading the weights costs seconds."""
    need_weights(model, device)
    key = (model, device, precision)
    if key not in _ENGINES:
        _ENGINES[key] = Interpolator(device=device, model=model, precision=precision)
    made = _ENGINES[key]
    made.scale, made.ensemble = None, False  # per-call settings are passed explicitly by each test
    return made


@pytest.fixture
def strict_float32():
    """Plain float32 convolutions on CUDA: cuDNN uses TF32 for float32 by default on Ampere and later, which is
    what ``precision="float32"`` gets there today (see test_cuda_float32_matches_cpu_float32)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# --- the engine on CUDA -----------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("model", MODELS)
def test_cuda_engine_is_on_the_gpu_with_float16(model):
    """device="cuda" and "auto" both pick the GPU with float16 convolutions, the weights live there, t batches of 8."""
    assert choose_device("auto") == (torch.device("cuda"), torch.float16)
    assert choose_device("cuda") == (torch.device("cuda"), torch.float16)
    for name in ("cuda", "auto"):
        e = engine(model, name)
        assert e.device.type == "cuda" and e.conv_dtype == torch.float16 and e.max_batch == MAX_BATCH_CUDA
        assert {p.device.type for p in e.model.parameters()} == {"cuda"}
        assert e.model_name == model


@pytest.mark.gpu(cpu=True)
@pytest.mark.parametrize("scale,sparse,ensemble", PATHS)
@pytest.mark.parametrize("model", MODELS)
def test_shapes_and_dtypes(device_under_test, model, scale, sparse, ensemble, monkeypatch):
    """CUDA's float16 on the sparse fast path (scales 1 and 0.5) and the plain path under autocast (scale 2), with
    and without ensembling: outputs keep the input's size (odd, so cropped from the padding), type and, for
    tensors, dtype and device; uint8 arrays come back to the host. On the CPU the plain path runs in the CPU's
    own dtype (its float16 convolutions take minutes there), the fast path in float16."""
    device = device_under_test
    a, b = (np.ascontiguousarray(f[:-1, :-3]) for f in pair(device))
    h, w = a.shape[:2]
    e = engine(model, device, "float16" if device == "cuda" or sparse else "auto")
    calls = []
    real_sparse = e.model.forward_sparse
    monkeypatch.setattr(e.model, "forward_sparse", lambda *x, **k: calls.append(1) or real_sparse(*x, **k))
    ts = [0.25, 0.5]
    out = e.interpolate(a, b, ts, scale=scale, ensemble=ensemble)
    assert bool(calls) == sparse, "the fast path was (not) taken"
    assert len(out) == len(ts)
    for frame in out:
        assert isinstance(frame, np.ndarray) and frame.shape == (h, w, 3) and frame.dtype == np.uint8
        assert 15 < psnr(frame, a) < 99 and psnr(frame, b) < 99  # a picture between them, not a copy or noise
    for dtype in (torch.float32, torch.float16):
        ta, tb = (torch.from_numpy(f).permute(2, 0, 1).to(device, dtype) / 255 for f in (a, b))
        (t_out,) = e.interpolate(ta, tb, [0.5], scale=scale, ensemble=ensemble)
        assert t_out.shape == (3, h, w) and t_out.dtype == dtype and t_out.device.type == device
        assert torch.isfinite(t_out).all() and 0 <= t_out.min() and t_out.max() <= 1


@pytest.mark.gpu(cpu=True)
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_float16_matches_float32_on_real_frames(device_under_test, model, ensemble, strict_float32):
    """float16 convolutions (CUDA's default) stay >= 45 dB from float32 on real frames: on CUDA on bigbuckbunny's
    and bikes' whole frames at every path (scale 1, 0.5 and 2); on the CPU on a crop, on the sparse path."""
    device = device_under_test
    exact, half = engine(model, device, "float32"), engine(model, device, "float16")
    if device == "cuda":
        assert engine(model, device).conv_dtype == torch.float16  # auto is float16 there
        cases = [(pair(device, name="bigbuckbunny.mp4", indices=(60, 62)), (1.0, 0.5, 2.0)),
                 (pair(device), (1.0, 0.5, 2.0))]
    else:
        cases = [(pair(device), (1.0,))]
    for (a, b), scales in cases:
        for scale in scales:
            want = exact.interpolate(a, b, [0.25, 0.5], scale=scale, ensemble=ensemble)
            got = half.interpolate(a, b, [0.25, 0.5], scale=scale, ensemble=ensemble)
            for t, x, y in zip((0.25, 0.5), want, got):
                db = psnr(x, y)
                assert db >= 45, f"{model} {a.shape[1]}x{a.shape[0]} scale {scale} t={t}: float16 {db:.1f} dB"


@pytest.mark.gpu(cpu=True)
@pytest.mark.parametrize("model", MODELS)
def test_batches_of_several_t(device_under_test, model):
    """Ten t in one call run in batches of 8 (CUDA's size; forced on the CPU, where the engine runs one at a time)
    and come back in the order asked, each as the single call makes it."""
    device = device_under_test
    a, b = pair(device)
    e = engine(model, device)
    saved = e.max_batch
    e.max_batch = MAX_BATCH_CUDA
    try:
        ts = [0.9, 0.1, 0.5, 0.3, 0.7, 0.05, 0.95, 0.6, 0.4, 0.2]  # 8 + 2, out of order
        batched = e.interpolate(a, b, ts)
        for t, got in zip(ts, batched):
            (single,) = e.interpolate(a, b, [t])
            assert psnr(got, single) >= 50, t
        near0, near1 = batched[ts.index(0.05)], batched[ts.index(0.95)]
        assert psnr(near0, a) > psnr(near0, b) and psnr(near1, b) > psnr(near1, a)
    finally:
        e.max_batch = saved


@pytest.mark.gpu
@pytest.mark.parametrize("model", MODELS)
def test_cuda_float32_matches_cpu_float32(model, strict_float32):
    """precision="float32" on CUDA gives the CPU's float32 frames (up to summation order) when cuDNN runs plain
    float32; with torch's default TF32 convolutions it is still >= 45 dB from them (what the engine does today)."""
    a, b = pair("cuda")
    cpu = Interpolator(device="cpu", model=model, precision="float32").interpolate(a, b, [0.5])[0]
    gpu = engine(model, "cuda", "float32")
    (strict,) = gpu.interpolate(a, b, [0.5])
    assert psnr(strict, cpu) >= 55, f"plain float32 on CUDA: {psnr(strict, cpu):.1f} dB from the CPU"
    torch.backends.cudnn.allow_tf32 = True
    (tf32,) = gpu.interpolate(a, b, [0.5])
    assert psnr(tf32, cpu) >= 45, f"TF32 convolutions: {psnr(tf32, cpu):.1f} dB from the CPU's float32"


# --- the commands ---------------------------------------------------------------------------------------------


def _retime(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m retime ARGS`` in a child process, as a shell runs it (its exit code, its stderr)."""
    env = dict(os.environ, COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "retime", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, device_under_test):
    """bigbuckbunny's first frames as lossless FFV1 at 25 fps (its real repeat at frame 7 in them), with one more
    repeat made at frame 20 on CUDA: 128 frames at 1280x720 there (enough for upsample to pay for `balanced`'s
    search), 16 at 320x180 on the CPU."""
    if av is None:
        pytest.skip("PyAV (av) is not installed here: the commands need it (carry its wheel, docs/performance.md)")
    n = 128 if device_under_test == "cuda" else 16
    frames = real_frames("bigbuckbunny.mp4", list(range(n)))
    if device_under_test == "cpu":
        frames = [np.ascontiguousarray(f[::4, ::4]) for f in frames]
    else:
        frames = damage(frames, [20])
    return write_clip(tmp_path_factory.mktemp("gpu-clip") / "short.mkv", frames)


@pytest.mark.slow
@pytest.mark.gpu(cpu=True)
@pytest.mark.parametrize("quality", ["fast", "balanced"])
@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
def test_commands_end_to_end(device_under_test, short_clip, tmp_path, command, quality):
    """``retime fix-drops`` and ``retime upsample --factor 2`` with ``--device DEVICE``: exit 0, the frame count
    and every PTS as the command promises, frames synthesized on that device (the report says where)."""
    device = device_under_test
    for model in MODELS if quality == "balanced" else MODELS[:1]:
        need_weights(model, device)
    out, report = tmp_path / "out.mkv", tmp_path / "out.json"
    extra = ["--factor", "2"] if command == "upsample" else []
    done = _retime(command, short_clip.path, out, *extra, "--device", device, "--quality", quality,
                   "--codec", "ffv1", "--report", report, "--quiet")
    assert done.returncode == 0, done.stderr
    facts, data = video_facts(out), json.loads(report.read_text())
    n = len(short_clip.frames)
    if command == "fix-drops":
        assert facts["n"] == n
        assert facts["times"] == [Fraction(i, 25) for i in range(n)]
    else:
        assert facts["n"] == 2 * n
        assert facts["times"] == [Fraction(j, 50) for j in range(2 * n)]
    assert data["frames_out"] == facts["n"] and data["synthesized"] >= 1
    assert data["device"] is not None and torch.device(data["device"]).type == device
    if quality == "balanced":  # a search runs only where the job pays for MIN_SAMPLES rebuilds per setting
        from retime.interpolate.autotune import MIN_SAMPLES
        from retime.pipeline._model import SEARCH_SHARE, ModelSettings

        settings = len(ModelSettings().candidates(*short_clip.frames[0].shape[:2]))
        affordable = int(data["synthesized"] * SEARCH_SHARE) // settings >= MIN_SAMPLES
        assert data["model"]["searched"] is affordable
        assert affordable is (device == "cuda" and command == "upsample")


@needs_av
@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
def test_cuda_without_cuda_is_a_usage_error(clips, tmp_path, command):
    """``--device cuda`` where PyTorch sees no CUDA: exit 2 and one line naming CUDA, before any work."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "o.mkv"
    done = _retime(command, clips["lossless"].path, out, "--device", "cuda", timeout=120)
    assert done.returncode == EXIT_USAGE, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("retime: error: ") and "CUDA" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []
