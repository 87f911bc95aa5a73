"""FFmpeg's ``minterpolate`` filter as a peer, when an ``ffmpeg`` executable is on ``PATH`` or comes with the
``imageio-ffmpeg`` package (``make peers``, which ``make bench`` runs; never required).

Settings as the measurement protocol asks: ``mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1`` (motion-compensated
interpolation, adaptive overlapped block motion compensation, bidirectional motion estimation, variable-size block
motion compensation), doubling the frame rate. Frames travel through pipes as raw RGB; no temporary files and no
shell: the argument list is passed as a list.

When no ``ffmpeg`` is found, :func:`unavailable_reason` says so and the bench prints that text in the column;
:func:`ffmpeg_version` names the one used.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from retime_bench.metrics import psnr

__all__ = ["MINTERPOLATE", "ffmpeg_path", "ffmpeg_version", "unavailable_reason", "minterpolate_middle",
           "minterpolate_video"]

#: The filter options of the protocol (docs/benchmarks.md); ``fps`` is added per call.
MINTERPOLATE = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
#: minterpolate holds back its last input frame and emits nothing after it at the end of the stream (two frames in,
#: none out; measured with FFmpeg 9.0), so the last frame is cloned once (``tpad``) before it: the in-between frames
#: up to the real last frame then come out, and the bench reads no further.
FLUSH = "tpad=stop_mode=clone:stop=1"
NOT_ON_PATH = "not available (no ffmpeg on PATH, no imageio-ffmpeg: make peers)"
#: An output frame at t = 0 must reproduce the first input frame to at least this PSNR (dB); otherwise the frames
#: are not where the bench expects them and it reports the peer as failed rather than mis-aligned numbers.
ALIGNMENT_PSNR = 30.0


def ffmpeg_path() -> str | None:
    """The ``ffmpeg`` executable on ``PATH``, else the one the ``imageio-ffmpeg`` wheel ships, else ``None``."""
    return shutil.which("ffmpeg") or _bundled_ffmpeg()


def _bundled_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package without a binary for this platform
        return None


def ffmpeg_version() -> str | None:
    """The first line of ``ffmpeg -version`` of :func:`ffmpeg_path` (e.g. ``ffmpeg version n9.0.2-…``), or
    ``None`` when there is none or it does not run."""
    exe = ffmpeg_path()
    if exe is None:
        return None
    try:
        run = subprocess.run([exe, "-version"], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = run.stdout.decode(errors="replace").splitlines()[:1]
    return first[0].split(" Copyright")[0] if run.returncode == 0 and first else None


def unavailable_reason() -> str | None:
    """``None`` when minterpolate can run, else the text the bench prints in its column."""
    return None if ffmpeg_path() else NOT_ON_PATH


def _read_raw(stdout, width: int, height: int) -> Iterator[np.ndarray]:
    size = width * height * 3
    while True:
        buf = stdout.read(size)
        if len(buf) < size:
            return
        yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)


def minterpolate_middle(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The frame halfway between two ``(H, W, 3)`` uint8 RGB frames, by ``minterpolate`` (1 → 2 frames/s).

    Raises:
        RuntimeError: ffmpeg failed or returned fewer frames than expected (the message carries its stderr).
        FileNotFoundError: no ffmpeg on PATH.
    """
    exe = ffmpeg_path()
    if exe is None:
        raise FileNotFoundError(NOT_ON_PATH)
    h, w, _ = first.shape
    args = [exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
            "-r", "1", "-i", "pipe:0", "-vf", f"{FLUSH},minterpolate=fps=2:{MINTERPOLATE}", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    run = subprocess.run(args, input=first.tobytes() + last.tobytes(), capture_output=True, check=False)
    frames = list(_read_raw(io.BytesIO(run.stdout), w, h))
    if run.returncode != 0 or len(frames) < 2:
        raise RuntimeError(f"ffmpeg minterpolate gave {len(frames)} frames (exit {run.returncode}): "
                           f"{run.stderr.decode(errors='replace').strip()[-300:]}")
    if psnr(frames[0], first) < ALIGNMENT_PSNR:
        raise RuntimeError(f"ffmpeg minterpolate's first output frame is not the first input frame "
                           f"(PSNR {psnr(frames[0], first):.1f} dB): the frames are not where the bench expects them")
    return frames[1].copy()


def minterpolate_video(path: Path, rate: Fraction, width: int, height: int) -> Iterator[np.ndarray]:
    """Decode ``path`` through ``minterpolate`` at ``2 * rate`` frames/s; yields ``(H, W, 3)`` uint8 RGB frames.

    Output frame ``2j`` sits at input frame ``j``, output ``2j + 1`` halfway between ``j`` and ``j + 1``.

    Raises:
        FileNotFoundError: no ffmpeg on PATH.
        RuntimeError: ffmpeg exited with an error (its stderr in the message).
    """
    exe = ffmpeg_path()
    if exe is None:
        raise FileNotFoundError(NOT_ON_PATH)
    out_rate = Fraction(rate) * 2
    args = [exe, "-hide_banner", "-loglevel", "error", "-i", str(path),
            "-vf", f"{FLUSH},minterpolate=fps={out_rate.numerator}/{out_rate.denominator}:{MINTERPOLATE}",
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield from _read_raw(proc.stdout, width, height)
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg minterpolate exited with {code}: {stderr.strip()[-300:]}")
