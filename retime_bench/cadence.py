"""The cadence task of ``retime bench``: known repeat cadences with a known truth, repaired by each ``--cadence``
mode of the real ``fix-drops``.

A virtual camera (:mod:`retime_bench.camera`) pans and zooms over one frame of the clip, rendered at a source rate
(24 fps: film in 25 fps; 16.67 fps: old film padded to 25) and converted to 25 fps by repeating the nearest frame,
losslessly (FFV1, 4:4:4), so the repeats follow a cadence; the true 25 fps frames are rendered too. Each mode runs
as shipped and is scored: mean PSNR against the truth (``decimate``: against the source frames, which it must give
back bit-exact), and the motion spread (:func:`retime_bench.camera.motion_spread`; lower is evener, the truth's
beside it).
"""

from __future__ import annotations

import logging
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from retime_bench.camera import VirtualCamera, convert, motion_spread
from retime_bench.clipio import iter_video_frames, read_image
from retime_bench.metrics import json_number, psnr
from retime.errors import InputError
from retime.media import EncodeSettings, iter_frames

__all__ = ["SOURCES", "cadence", "texture_label"]

log = logging.getLogger(__name__)

#: (source rate, output frames at 25 fps) of each conversion measured.
SOURCES = ((Fraction(24), 100), (Fraction(50, 3), 60))
OUT_RATE = Fraction(25)
#: The camera's path over the frame (scaled to 960x540): pixels per second, and the zoom per second.
START, VELOCITY, ZOOM = (40.0, 60.0), (90.0, 24.0), 0.02


#: Still images the camera can film instead of a video frame (a photograph: its texture was never video-coded).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


def _texture(clip: Path) -> np.ndarray:
    """The picture the camera films, at 960x540, as (H, W, 3) uint8 RGB: one frame of ``clip`` (the middle of its
    first 120 frames), or, for an image file, the image cropped to 16:9 about its centre."""
    from skimage.transform import resize

    if clip.suffix.lower() in IMAGE_SUFFIXES:
        picture = read_image(clip)
        height, width = picture.shape[:2]
        rows = min(height, width * 9 // 16)
        cols = min(width, rows * 16 // 9)
        top, left = (height - rows) // 2, (width - cols) // 2
        picture = picture[top:top + rows, left:left + cols]
    else:
        frames = [rgb for _, rgb in iter_video_frames(clip, 120)]
        if not frames:
            raise InputError(f"{clip}: no frame to build the cadence task from")
        picture = frames[len(frames) // 2]
    image = resize(picture, (540, 960), anti_aliasing=True)
    return (image * 255).round().astype(np.uint8)


def texture_label(clip: Path) -> str:
    """How the report names the texture: the file name, with its folder for an image (Middlebury's are all
    frame10.png)."""
    return f"{clip.parent.name}/{clip.name}" if clip.suffix.lower() in IMAGE_SUFFIXES else clip.name


def _write(frames: list[np.ndarray], path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=OUT_RATE)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for j, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts = j
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def cadence(clip: Path, *, size: tuple[int, int] = (320, 192), interpolator=None,
            workdir: Path | None = None) -> list[dict[str, Any]]:
    """Measure ``fix-drops --cadence fill|retime|decimate`` on the conversions of :data:`SOURCES`.

    Args:
        clip: a video, one of whose frames is the texture the camera films, or a still image (a photograph).
        size: (width, height) of the rendered frames, pixels.
        interpolator: injected into :func:`retime.pipeline.fix_drops`; ``None``: the product's own choice.

    Returns:
        The ``cadence`` section of the bench JSON: one entry per source rate, ``{"source", "source_rate",
        "frames", "truth_spread", "cadence_found", "modes": {mode: {"frames_out", "out_rate", "synthesized",
        "psnr", "spread", "bit_exact" (decimate only), "seconds"}}}``; PSNR in dB.
    """
    from retime.pipeline import analyse, fix_drops

    width, height = size
    camera = VirtualCamera(_texture(clip), width, height, start=START, velocity=VELOCITY, zoom=ZOOM)
    results = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="retime-bench-cadence-") as tmp:
        for source_rate, n_out in SOURCES:
            shown = convert(source_rate, OUT_RATE, n_out)
            source = [camera.frame(Fraction(i) / source_rate) for i in range(shown[-1] + 1)]
            truth = [camera.frame(Fraction(j) / OUT_RATE) for j in range(n_out)]
            path = Path(tmp) / f"cadence-{float(source_rate):.2f}.mkv"
            _write([source[i] for i in shown], path)
            found = analyse(path).cadence
            entry: dict[str, Any] = {"source": str(clip), "texture": texture_label(clip),
                                     "source_rate": f"{float(source_rate):.2f}",
                                     "frames": n_out, "truth_spread": round(motion_spread(truth), 4),
                                     "cadence_found": None if found is None else str(found.period), "modes": {}}
            for mode in ("fill", "retime", "decimate"):
                log.info(f"cadence {clip.name} ({float(source_rate):.2f} fps in 25): fix-drops --cadence {mode}")
                out = Path(tmp) / f"{path.stem}-{mode}.mkv"
                started = time.perf_counter()
                result = fix_drops(path, out, encode=EncodeSettings(codec="ffv1"), interpolator=interpolator,
                                   cadence=mode)
                decoded = list(iter_frames(out))
                frames = [d.rgb for d in decoded]
                reference = source if mode == "decimate" else truth
                row = {"frames_out": len(frames), "out_rate": str(result.out_rate),
                       "synthesized": result.synthesized,
                       "psnr": json_number(float(np.mean([psnr(a, b) for a, b in zip(frames, reference)]))),
                       "spread": round(motion_spread(frames), 4),
                       "seconds": round(time.perf_counter() - started, 1)}
                if mode == "decimate":
                    inputs = [d.frame.to_ndarray() for d in iter_frames(path)]
                    row["bit_exact"] = len(decoded) == len(source) and all(
                        np.array_equal(d.frame.to_ndarray(), inputs[shown.index(i)]) for i, d in enumerate(decoded))
                entry["modes"][mode] = row
            results.append(entry)
    return results
