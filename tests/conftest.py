"""Synthetic clips made with PyAV for the media, pipeline and CLI tests, and cheap stand-in interpolators.

Every clip is small (96x64, 40 frames or fewer) so the suite stays fast on two cores. The picture is a smooth random
texture translating a few pixels per frame, so consecutive distinct frames differ by several grey levels while a
duplicate differs by (almost) nothing. Clips are made once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

try:  # the GPU machine may lack PyAV: tests/test_gpu.py then skips what needs it (a CPU run always has it)
    import av
except ImportError:  # pragma: no cover
    av = None


def pytest_configure(config):
    # what the CLI sets up for a process that runs the model (an engine no longer does it in its constructor), so
    # that the model's tests run as the program does
    from retime._process import configure_process

    configure_process()


# --- RETIME_TEST_DEVICE: the device the `gpu` tests run on (tests/test_gpu.py, scripts/gpu_check.sh) -------------
#: ``cpu`` (the default) or ``cuda``. Tests marked ``gpu`` run the model, engine and pipeline on it; those marked
#: ``gpu(cpu=True)`` also make sense on the CPU (smaller frames there), the others are skipped unless it is
#: ``cuda`` and PyTorch sees a CUDA device. A skip always says why (`-rs`); nothing passes without running.
TEST_DEVICES = ("cpu", "cuda")


def device_from_env() -> str:
    import os

    name = os.environ.get("RETIME_TEST_DEVICE", "cpu").strip().lower() or "cpu"
    if name not in TEST_DEVICES:
        raise pytest.UsageError(f"RETIME_TEST_DEVICE={name!r}: use one of {', '.join(TEST_DEVICES)}")
    return name


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    name = device_from_env()
    cuda = False
    if name == "cuda":
        import torch

        cuda = torch.cuda.is_available()
    for item in gpu_items:
        if name == "cuda" and not cuda:
            item.add_marker(pytest.mark.skip(reason="RETIME_TEST_DEVICE=cuda, but torch.cuda.is_available() is "
                                                    "False (a CPU-only torch build, or no driver)"))
        elif name == "cpu" and not item.get_closest_marker("gpu").kwargs.get("cpu", False):
            item.add_marker(pytest.mark.skip(reason="needs CUDA: run with RETIME_TEST_DEVICE=cuda on a CUDA machine "
                                                    "(scripts/gpu_check.sh)"))


@pytest.fixture(scope="session")
def device_under_test() -> str:
    """The device the ``gpu`` tests run on: ``RETIME_TEST_DEVICE`` (``cpu`` or ``cuda``)."""
    return device_from_env()
# --- end of RETIME_TEST_DEVICE ------------------------------------------------------------------------------------


WIDTH, HEIGHT = 96, 64
RATE = 25
N_FRAMES = 40
#: Frame 30 starts a new shot (a different texture moving the other way).
CUT = 30
#: Duplicated frames: each repeats the frame before it. 5; 12-13; 20-22 are repairable runs of 1, 2 and 3;
#: 29 is a drop right before the cut (its right neighbour is in another shot: kept); 34-38 is a freeze (5 > max_run).
REPAIRABLE = [5, 12, 13, 20, 21, 22]
AT_CUT = [29]
FREEZE = [34, 35, 36, 37, 38]
DUPLICATES = sorted(REPAIRABLE + AT_CUT + FREEZE)
AUDIO_RATE = 48000


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB texture, (height, width, 3) uint8: bilinear upsampling of coarse noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 6 + 2, width // 6 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    img = ((1 - fy) * (1 - fx) * c[y0][:, x0] + (1 - fy) * fx * c[y0][:, x0 + 1]
           + fy * (1 - fx) * c[y0 + 1][:, x0] + fy * fx * c[y0 + 1][:, x0 + 1])
    return (img * 255).round().astype(np.uint8)


def moving_frames(n: int, *, width: int = WIDTH, height: int = HEIGHT, speed: int = 3, seed: int = 0,
                  reverse: bool = False) -> list[np.ndarray]:
    """``n`` distinct frames of a texture moving ``speed`` pixels per frame horizontally."""
    tex = texture(height, width + speed * n + 1, seed)
    frames = []
    for i in range(n):
        x = speed * (n - 1 - i) if reverse else speed * i
        frames.append(np.ascontiguousarray(tex[:, x:x + width]))
    return frames


def true_frames(n: int = N_FRAMES, cut: int | None = CUT, **kw) -> list[np.ndarray]:
    """The undamaged picture: one shot, then (from ``cut``) another with a different texture."""
    if cut is None:
        return moving_frames(n, **kw)
    # The second shot is a brighter, flatter texture moving the other way: about 60 grey levels from the first.
    second = moving_frames(n - cut, seed=7, speed=2, reverse=True,
                           **{k: v for k, v in kw.items() if k not in ("seed", "speed")})
    return moving_frames(cut, **kw) + [(f * 0.3 + 170).round().astype(np.uint8) for f in second]


def slow_frames(n: int, *, contrast: float = 0.05) -> list[np.ndarray]:
    """A nearly static shot: a low-contrast texture creeping 1 px per frame (about 0.35 grey levels per frame)."""
    return [(f * contrast + 100).round().astype(np.uint8) for f in moving_frames(n, speed=1, seed=3)]


def damage(frames: Sequence[np.ndarray], duplicates: Sequence[int]) -> list[np.ndarray]:
    """Replace each frame in ``duplicates`` with (a copy of) the frame before it, in ascending order."""
    out = list(frames)
    for i in sorted(duplicates):
        out[i] = out[i - 1].copy()
    return out


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: list  # the RGB frames that were encoded
    pts: list  # their PTS, in time_base units
    time_base: Fraction


def write_clip(path: Path, frames: Sequence[np.ndarray], *, codec: str = "ffv1", pix_fmt: str = "yuv420p",
               rate: int | Fraction = RATE, pts: Sequence[int] | None = None, time_base: Fraction | None = None,
               audio: bool = False, rotation: int | None = None, color: dict | None = None,
               options: dict | None = None, subtitles: Path | None = None,
               container_options: dict | None = None) -> Clip:
    """Encode RGB ``frames`` into ``path`` (the extension picks the container) and return what was written."""
    time_base = time_base or Fraction(1, rate)
    pts = list(pts) if pts is not None else [round(Fraction(i, rate) / time_base) for i in range(len(frames))]
    opts = dict(options or {})
    if codec == "libx264":
        opts.setdefault("crf", "18")
        opts.setdefault("preset", "ultrafast")
    out = av.open(str(path), "w", options=container_options or {})
    video = out.add_stream(codec, rate=rate, options=opts)
    video.width, video.height = frames[0].shape[1], frames[0].shape[0]
    video.pix_fmt = pix_fmt
    video.codec_context.time_base = time_base
    video.time_base = time_base
    for key, value in (color or {}).items():
        setattr(video.codec_context, key, value)
    if rotation is not None:
        video.set_display_rotation(rotation)
    video.metadata["title"] = "retime test clip"
    out.metadata["comment"] = "made by tests/conftest.py"
    sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
    sub_in = None
    if subtitles is not None:
        sub_in = av.open(str(subtitles))
        sub_out = out.add_stream_from_template(sub_in.streams[0])
    for frame_rgb, p in zip(frames, pts):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        rng = (color or {}).get("color_range")
        frame = frame.reformat(format=pix_fmt, dst_color_range=rng or None)
        frame.pts = p
        frame.time_base = time_base
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if sound is not None:
        end = (pts[-1] + pts[1] - pts[0]) * time_base
        n = int(end * AUDIO_RATE)
        t = np.arange(n) / AUDIO_RATE
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for k in range(0, n, 1024):
            chunk = np.ascontiguousarray(samples[:, k:k + 1024])
            aframe = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            aframe.sample_rate = AUDIO_RATE
            aframe.pts = k
            out.mux(sound.encode(aframe))
        out.mux(sound.encode(None))
    if sub_in is not None:
        for packet in sub_in.demux(sub_in.streams[0]):
            if packet.size:
                packet.stream = sub_out
                out.mux(packet)
        sub_in.close()
    out.close()
    return Clip(path=Path(path), frames=list(frames), pts=pts, time_base=time_base)


# --- stand-in interpolators -----------------------------------------------------------------------------------


class BlendInterpolator:
    """Linear blend, (1 - t) * frame0 + t * frame1: cheap, deterministic, and distinguishable from a duplicate."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, ...]] = []
        self.device = "blend"

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
        self.calls.append(tuple(ts))
        a, b = frame0.astype(np.float32), frame1.astype(np.float32)
        return [((1 - t) * a + t * b).round().astype(np.uint8) for t in ts]


class FailingInterpolator(BlendInterpolator):
    """Raises on call number ``after`` + 1: an error in the middle of a run."""

    def __init__(self, after: int = 1, exc: BaseException | None = None) -> None:
        super().__init__()
        self.after = after
        self.exc = exc or RuntimeError("injected failure")

    def interpolate(self, frame0, frame1, ts):
        if len(self.calls) >= self.after:
            raise self.exc
        return super().interpolate(frame0, frame1, ts)


@pytest.fixture
def blend() -> BlendInterpolator:
    return BlendInterpolator()


@pytest.fixture(scope="session", autouse=True)
def _empty_weights_cache(tmp_path_factory):
    """Point the user weights cache ($RETIME_HOME) at an empty folder for the whole session, so no test reads or
    writes the developer's real cache: the model is then found in the checkout's weights/, as `make test` fetches."""
    import os

    previous = os.environ.get("RETIME_HOME")
    os.environ["RETIME_HOME"] = str(tmp_path_factory.mktemp("retime-home"))
    yield
    if previous is None:
        os.environ.pop("RETIME_HOME", None)
    else:
        os.environ["RETIME_HOME"] = previous


# --- clips ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Clip]:
    """All synthetic clips, keyed by name (made once per session)."""
    d = tmp_path_factory.mktemp("clips")
    truth = true_frames()
    damaged = damage(truth, DUPLICATES)
    srt = d / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,800\nhello\n\n2\n00:00:01,000 --> 00:00:01,400\nworld\n")
    made = {
        # lossless, with audio: the reference for bit-exact checks
        "lossless": write_clip(d / "drops.mkv", damaged, audio=True),
        # lossy H.264 in MP4 with audio and BT.709 tags
        "lossy": write_clip(d / "drops.mp4", damaged, codec="libx264", audio=True,
                            color={"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}),
        # no duplicates at all
        "clean": write_clip(d / "clean.mkv", true_frames(24, cut=None)),
        # variable frame rate: irregular PTS in a 1/1000 time base, duplicates at 5 and 12-13
        "vfr": write_clip(d / "vfr.mkv", damage(moving_frames(24), [5, 12, 13]),
                          pts=list(np.cumsum([0] + [33, 50, 40, 42, 67, 33] * 4)[:24]), time_base=Fraction(1, 1000)),
        # 10-bit H.264
        "tenbit": write_clip(d / "tenbit.mp4", damage(moving_frames(16), [6]), codec="libx264",
                             pix_fmt="yuv420p10le"),
        # a phone video shot in portrait: rotation in the display matrix
        "rotated": write_clip(d / "rotated.mp4", damage(moving_frames(12), [4]), codec="libx264", rotation=90),
        # a subtitle stream (SubRip) besides the video, in Matroska
        "subtitled": write_clip(d / "subtitled.mkv", damage(moving_frames(16), [6]), subtitles=srt),
        # a slow, nearly static shot: real motion far under a grey level per frame; nothing to repair
        "static": write_clip(d / "static.mkv", slow_frames(24)),
        "one_frame": write_clip(d / "one.mkv", truth[:1]),
        # full-range ("pc") BT.709 4:4:4: the colour matrix and range must survive the RGB round trip of synthesis
        "full_range": write_clip(d / "full.mkv", damage(moving_frames(10), [4]), pix_fmt="yuv444p",
                                 color={"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}),
        # odd width and height in 4:2:0 (FFV1 stores that; x264 cannot)
        "odd": write_clip(d / "odd.mkv", moving_frames(6, width=97, height=65)),
        # NTSC rate in Matroska: timestamps rounded to the millisecond (0, 33, 67, 100, ...)
        "ntsc_mkv": write_clip(d / "ntsc.mkv", moving_frames(12), rate=Fraction(30000, 1001),
                               pts=[round(Fraction(1001 * i, 30)) for i in range(12)], time_base=Fraction(1, 1000)),
    }
    # audio only
    audio_only = d / "audio.m4a"
    out = av.open(str(audio_only), "w")
    s = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    for k in range(0, AUDIO_RATE // 2, 1024):
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        f.sample_rate, f.pts = AUDIO_RATE, k
        out.mux(s.encode(f))
    out.mux(s.encode(None))
    out.close()
    made["audio_only"] = Clip(audio_only, [], [], Fraction(1, AUDIO_RATE))
    # not a video
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    made["not_video"] = Clip(text, [], [], Fraction(1))
    # truncated: an MP4 with its index first (faststart), cut in the middle of its media data
    whole = write_clip(d / "whole.mp4", damaged, codec="libx264", container_options={"movflags": "faststart"})
    data = whole.path.read_bytes()
    cut = d / "truncated.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    made["truncated"] = Clip(cut, [], [], whole.time_base)
    # truncated Matroska (no frame count in its header)
    data = made["lossless"].path.read_bytes()
    cut = d / "truncated.mkv"
    cut.write_bytes(data[: len(data) // 2])
    made["truncated_mkv"] = Clip(cut, [], [], Fraction(1, 1000))
    return made


def video_facts(path: Path) -> dict:
    """Frame count, PTS (seconds, exact), rate, duration, pix_fmt, colour tags, rotation of a file's video."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return {
            "n": len(frames),
            "times": [f.pts * f.time_base for f in frames],
            "rate": s.average_rate,
            "pix_fmt": frames[0].format.name,
            "codec": s.codec_context.name,
            "colour": (frames[0].color_primaries, frames[0].color_trc, frames[0].colorspace,
                       frames[0].color_range),
            "rotation": frames[0].rotation,
            "duration": (s.duration * s.time_base) if s.duration is not None else None,
            "container_duration": c.duration,
            "streams": [(x.type, x.codec_context.name if x.codec_context else None) for x in c.streams],
            "metadata": dict(c.metadata),
            "video_metadata": dict(s.metadata),
            "planes": [f.to_ndarray() for f in frames],
        }


def packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    """(time in seconds, payload) of every packet of the first stream of ``kind`` ("audio", "subtitle")."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(streams[0]) if p.size]
