"""The benchmark's own reading and writing of test material: image triplets, clip frames, and small test videos.

The bench makes its inputs (the half-rate video of the quality task, the damaged video of the drop-repair task) with
plain PyAV rather than with retime's own :class:`~retime.media.VideoWriter`, so that a fault in the code under test
cannot also shape its test input. Frames are kept in their decoded pixel format (usually ``yuv420p``) so that a
lossless FFV1 copy holds exactly the source's pixels. RGB images are compared after the same conversion on both
sides (:func:`retime.media.to_rgb`, which honours each frame's colour range).

:func:`reencode` is the exception on purpose: it is the floor retime's commands are compared with (decode + encode
with retime's own writer and settings, no analysis, no model), and it lives here, beside the other plain I/O, so
that the measurement worker runs it without loading the metrics' scikit-image.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from retime.errors import InputError
from retime.media import EncodeSettings, VideoWriter, iter_frames, probe

__all__ = ["Triplet", "TRIPLET_LAYOUTS", "find_triplet_dirs", "load_triplet", "read_image", "iter_video_frames",
           "write_video"]

#: File-name layouts of an interpolation triplet folder: (first frame, true middle frame, last frame).
TRIPLET_LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("frame10.png", "frame10i11.png", "frame11.png"),  # Middlebury "other" (sepconv / AdaCoF / CDFI copies)
    ("frame_00.png", "frame_01_gt.png", "frame_02.png"),  # UCF101 triplets as distributed with DVF / CDFI
    ("frame0.png", "frame1.png", "frame2.png"),  # generic frame0/1/2
    ("im1.png", "im2.png", "im3.png"),  # Vimeo-90k triplets
)


@dataclass(frozen=True, eq=False)
class Triplet:
    """Three frames of one shot: ``first`` (t = 0), ``truth`` (t = 0.5) and ``last`` (t = 1).

    Each is an ``(H, W, 3)`` uint8 RGB array; ``name`` says where it came from (a folder, or frame indices).
    """

    name: str
    first: np.ndarray
    truth: np.ndarray
    last: np.ndarray


def read_image(path: Path) -> np.ndarray:
    """Read one image file (PNG, JPEG, ...) as ``(H, W, 3)`` uint8 RGB (grey is replicated, alpha dropped).

    Raises:
        InputError: the file cannot be read as an image.
    """
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the image ({exc})") from None


def _layout_of(folder: Path) -> tuple[str, str, str] | None:
    for layout in TRIPLET_LAYOUTS:
        if all((folder / name).is_file() for name in layout):
            return layout
    return None


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def find_triplet_dirs(folder: Path) -> list[Path]:
    """The triplet folders at ``folder``: itself when it is one, else its sub-folders that are (natural sort order).

    Raises:
        InputError: neither ``folder`` nor any sub-folder holds one of :data:`TRIPLET_LAYOUTS`.
    """
    folder = Path(folder)
    if _layout_of(folder):
        return [folder]
    found = sorted((p for p in folder.iterdir() if p.is_dir() and _layout_of(p)), key=_natural_key)
    if not found:
        names = "; ".join(", ".join(layout) for layout in TRIPLET_LAYOUTS)
        raise InputError(f"{folder}: no image triplet here or in its sub-folders (expected one of: {names})")
    return found


def load_triplet(folder: Path) -> Triplet:
    """Load one triplet folder (any of :data:`TRIPLET_LAYOUTS`).

    Raises:
        InputError: no known layout, an unreadable image, or images of different sizes.
    """
    layout = _layout_of(folder)
    if layout is None:
        raise InputError(f"{folder}: not an image triplet folder")
    first, truth, last = (read_image(folder / name) for name in layout)
    if not first.shape == truth.shape == last.shape:
        raise InputError(f"{folder}: the three images differ in size ({first.shape}, {truth.shape}, {last.shape})")
    return Triplet(folder.name, first, truth, last)


def iter_video_frames(path: Path, max_frames: int | None = None) -> Iterator[tuple[av.VideoFrame, np.ndarray]]:
    """Decode the first ``max_frames`` frames (all when ``None``) of a video, as ``(native frame, RGB)`` pairs.

    The native :class:`av.VideoFrame` keeps the stream's pixel format (for lossless copies); the RGB image is
    ``(H, W, 3)`` uint8. Memory does not grow with the video's length.
    """
    for decoded in iter_frames(path):
        if max_frames is not None and decoded.index >= max_frames:
            break
        yield decoded.frame, decoded.rgb


def write_video(frames: Iterable[av.VideoFrame], path: Path, *, rate: Fraction, codec: str = "ffv1",
                crf: int | None = None, preset: str = "medium", like: av.VideoFrame | None = None) -> int:
    """Encode frames (their own pixel format and size) to ``path`` at a constant ``rate`` (frames per second).

    Args:
        frames: the frames to write, in order; their PTS are replaced by 0, 1, 2, ... in units of ``1/rate``.
        codec: ``"ffv1"`` (lossless, for ``.mkv``) or ``"libx264"`` (with ``crf``, for ``.mp4`` or ``.mkv``).
        crf: x264 constant rate factor (0-51); required for libx264.
        like: a frame whose colour tags (matrix, range, primaries, transfer) the stream gets; default the first.

    Returns:
        The number of frames written.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise InputError(f"{path}: no frames to write")
    like = like or first
    options = {"level": "3"} if codec == "ffv1" else {"crf": str(crf), "preset": preset}
    if codec != "ffv1" and crf is None:
        raise ValueError("libx264 needs a crf")
    count = 0
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height = first.width, first.height
        stream.pix_fmt = first.format.name
        # Frame PTS count frames in the codec's time base; the muxer rescales packets to the container's own
        # time base (1/1000 in Matroska), so frames must never be stamped with stream.time_base after start.
        tick = 1 / Fraction(rate)
        stream.time_base = tick
        cc = stream.codec_context
        cc.time_base = tick
        for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
            value = getattr(like, attr, None)
            if value is not None:
                setattr(cc, attr, value)
        for frame in itertools.chain([first], frames):
            copy = frame.reformat(format=first.format.name) if frame.format.name != first.format.name else frame
            copy.pts = count
            copy.time_base = tick
            copy.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream.encode(copy))
            count += 1
        out.mux(stream.encode(None))
    return count


def reencode(path: Path, out_path: Path, encode: EncodeSettings) -> int:
    """Decode ``path`` and encode every frame again with retime's writer and ``encode``: no analysis, no model.

    The floor of fix-drops' speed and of its untouched frames' quality. Returns the frames written.
    """
    info = probe(path)
    with VideoWriter(out_path, info, settings=encode, time_base=info.time_base, rate=info.frame_rate) as writer:
        for decoded in iter_frames(path):
            writer.write(decoded.frame, decoded.pts, decoded.duration)
        return writer.frames_written
