"""Streaming decode of a file's first video stream: one frame at a time, memory independent of the video's length.

- :func:`iter_luma` (analysis, pass 1) yields :class:`LumaFrame` — an (H, W) uint8 grey image per frame — and
  refuses corrupted or truncated files (FFmpeg's error messages are captured while decoding, and the count of
  decoded frames is checked against the container's count).
- :func:`iter_frames` (rendering, pass 2) yields :class:`DecodedFrame` — the frame exactly as decoded (native
  pixel format, so frames that are passed through are re-encoded from the very same pixels) and its RGB image on
  demand.

Timestamps are read, never assumed: ``pts`` is the stream's integer timestamp in ``time_base`` units and ``time`` its
exact value in seconds. A frame without a PTS (raw bitstreams) gets the previous PTS plus the previous duration.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Container, Iterator

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.frame import PictureType

from retime.errors import InputError
from retime.media.probe import open_input, stream_rate, stream_time_base

__all__ = ["LumaFrame", "DecodedFrame", "iter_luma", "iter_frames", "motion_vector_share", "to_luma", "to_rgb"]


@dataclass(frozen=True, eq=False)
class LumaFrame:
    """One frame for analysis: ``luma`` is (H, W) uint8 grey levels (0-255) at the stored size and orientation;
    ``rgb`` its (H, W, 3) uint8 RGB picture for the frames asked for (``iter_luma(keep_rgb=...)``), else ``None``;
    ``picture_type`` the decoder's picture type (``"I"``, ``"P"``, ``"B"``, ...); ``vectors`` the frame's
    :func:`motion_vector_share` when asked for (``iter_luma(vectors=True)``), else ``None``. The decoded frame
    stays attached while the object lives, for :meth:`thumbnail`."""

    index: int
    pts: int
    time: Fraction  # seconds
    duration: int | None  # the frame's duration in time_base units, when the container says
    luma: np.ndarray
    rgb: np.ndarray | None = None
    picture_type: str = ""
    vectors: float | None = None
    source: av.VideoFrame | None = field(default=None, repr=False)

    def thumbnail(self, longer_side: int) -> np.ndarray:
        """The picture as a small (h, w, 3) uint8 RGB image, area-averaged, its longer side ``longer_side`` pixels
        (the other in proportion, at least 1), converted on demand: colour measures that need no detail (scene
        cuts) ask for it only where they are consulted.

        Raises:
            ValueError: the frame was made without its decoded source.
        """
        if self.source is None:
            raise ValueError(f"LumaFrame {self.index}: no decoded frame to make a thumbnail from")
        frame = self.source
        scale = longer_side / max(frame.width, frame.height)
        size = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        return frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA",
                              src_color_range=_range_or_none(frame.color_range)).to_ndarray()


@dataclass(eq=False)
class DecodedFrame:
    """One decoded frame: ``frame`` is the :class:`av.VideoFrame` in the stream's own pixel format."""

    index: int
    pts: int
    time: Fraction  # seconds
    duration: int | None
    frame: av.VideoFrame

    @cached_property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, converted once, with the colour matrix and range the frame is tagged with."""
        return to_rgb(self.frame)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert a decoded frame to (H, W, 3) uint8 RGB using its own colour matrix and range.

    PyAV treats an unset source range as limited, so the frame's range is passed explicitly: a full-range
    ("pc"/yuvj) video would otherwise come out with crushed blacks and whites.
    """
    return frame.to_ndarray(format="rgb24", src_color_range=_range_or_none(frame.color_range))


#: Least share of a P-frame's area its inter-coded blocks must cover for :func:`motion_vector_share` to speak for
#: the frame: a mostly intra-coded frame changed in ways the encoder could not predict, and its few vectors say
#: little of it.
MIN_INTER_AREA = 0.5


def motion_vector_share(frame: av.VideoFrame) -> float | None:
    """Share of a P-frame's inter-coded area (in [0, 1]) that did not stay in place: not predicted from an earlier
    picture with a zero motion vector.

    A repeated picture coded as a P-frame is predicted from the same place in its reference: its vectors are zero
    wherever coding noise does not matter to the encoder, while real motion, however slow, moves some blocks.
    Intra-coded blocks carry no vector and are left out of both parts of the share. Needs a decoder opened with
    ``export_side_data=mvs`` (:func:`iter_luma` with ``vectors=True``). The exported blocks are clipped to the
    picture (a coded 1920x1088 frame shows 1920x1080). The vectors carry no reference index: in a stream with
    several reference pictures a zero vector may point at an older one.

    Returns:
        The share, or ``None`` for a frame that is not a P-frame, carries no exported vectors (an I-frame, a codec
        that exports none), or whose inter-coded blocks cover less than :data:`MIN_INTER_AREA` of it.
    """
    if frame.pict_type != PictureType.P:
        return None
    data = frame.side_data.get(SideDataType.MOTION_VECTORS)
    if data is None:
        return None
    blocks = data.to_ndarray()
    # dst_x, dst_y: the block's centre in the picture (pixels)
    half_w, half_h = blocks["w"].astype(np.int64) / 2, blocks["h"].astype(np.int64) / 2
    x, y = blocks["dst_x"].astype(np.int64), blocks["dst_y"].astype(np.int64)
    area = ((np.clip(x + half_w, 0, frame.width) - np.clip(x - half_w, 0, frame.width))
            * (np.clip(y + half_h, 0, frame.height) - np.clip(y - half_h, 0, frame.height)))
    inter = float(area.sum())
    if inter < MIN_INTER_AREA * frame.width * frame.height:
        return None
    in_place = float(area[(blocks["motion_x"] == 0) & (blocks["motion_y"] == 0)].sum())
    return 1.0 - in_place / inter


def _range_or_none(value) -> int | None:
    return int(value) if value is not None and int(value) != 0 else None


#: Pixel formats whose first plane is the luma at one byte per sample: their grey picture is a per-sample
#: function of that plane (no dither, no chroma), so :func:`to_luma` reads it through a lookup table.
_LUMA_PLANE_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
                                 "yuvj440p", "yuv411p", "yuvj411p", "yuv410p", "nv12", "nv21", "nv16", "nv24",
                                 "nv42", "gray"})


#: Colour matrices (FFmpeg's enum: 2 unspecified, 5 BT.470BG, 6 SMPTE 170M, all BT.601) under which libswscale's
#: gray conversion reads the luma sample alone; under others (BT.709, BT.2020) it converts the colour and its grey
#: depends on the chroma too, so those frames go through libswscale.
_LUMA_ONLY_MATRICES = frozenset({2, 5, 6})


@functools.lru_cache(maxsize=32)
def _luma_table(format_name: str, source_range: int | None) -> np.ndarray:
    """The grey level libswscale gives each 8-bit luma sample of ``format_name`` at ``source_range``: a (256,)
    uint8 table measured by converting a ramp through libswscale itself, so the table is its conversion exactly."""
    ramp = av.VideoFrame(256, 2, format_name)
    for i, plane in enumerate(ramp.planes):
        samples = np.full(plane.buffer_size, 128, np.uint8)
        if i == 0:
            rows = samples.reshape(plane.height, plane.line_size)
            rows[:, :256] = np.arange(256, dtype=np.uint8)
        plane.update(samples.tobytes())
    return ramp.to_ndarray(format="gray", src_color_range=source_range)[0].copy()


@functools.lru_cache(maxsize=32)
def _luma_pair_table(format_name: str, source_range: int | None) -> np.ndarray:
    """:func:`_luma_table` for two neighbouring samples at once: a (65536,) uint16 table indexed by the pair read
    as one native-endian uint16, so one look-up maps two samples."""
    single = _luma_table(format_name, source_range)
    pair = np.arange(1 << 16, dtype=np.uint16).view(np.uint8).reshape(-1, 2)  # each index's two bytes, in order
    return np.ascontiguousarray(single[pair]).view(np.uint16).reshape(-1)


def to_luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's grey picture, (H, W) uint8 grey levels 0-255 (limited-range luma stretched to full range),
    equal to libswscale's ``gray`` conversion.

    For planar and semi-planar 8-bit YUV tagged BT.601 or untagged the luma plane is read through
    :func:`_luma_table` (a table look-up instead of a libswscale pass: pass 1 decodes every frame, and the
    conversion cost more than the decode), two samples per look-up where the row allows. Other formats (10-bit,
    RGB, packed) and other matrices go through libswscale.
    """
    source_range = _range_or_none(frame.color_range)
    if frame.format.name not in _LUMA_PLANE_FORMATS or int(frame.colorspace or 2) not in _LUMA_ONLY_MATRICES:
        return frame.to_ndarray(format="gray", src_color_range=source_range)
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    if plane.width % 2 == 0 and plane.line_size % 2 == 0:
        pairs = rows[:, :plane.width].view(np.uint16)
        return np.take(_luma_pair_table(frame.format.name, source_range), pairs).view(np.uint8)
    return np.take(_luma_table(frame.format.name, source_range), rows[:, :plane.width])


@contextlib.contextmanager
def _ffmpeg_errors() -> Iterator[list]:
    """Capture FFmpeg's ERROR-level (and worse) log messages from every thread into a list of (level, name, text).

    PyAV only forwards FFmpeg's log when a level is set, so the level is set for the duration and put back after.
    """
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


class _Timeline:
    """Turns the decoder's (possibly missing or non-increasing) PTS into a strictly increasing sequence."""

    def __init__(self, time_base: Fraction, rate: Fraction) -> None:
        self.time_base = time_base
        self.step = max(1, round(1 / (rate * time_base))) if rate else 1  # one frame at the average rate
        self.last: int | None = None
        self.last_duration: int | None = None

    def pts_of(self, frame: av.VideoFrame) -> int:
        pts = frame.pts
        if pts is None:
            pts = self.last + (self.last_duration or self.step) if self.last is not None else 0
        elif self.last is not None and pts <= self.last:
            # A repeated or backwards timestamp cannot be muxed; nudge it one tick after the last one.
            pts = self.last + 1
        self.last = pts
        self.last_duration = frame.duration or None
        return pts


def _decode(path: Path, *, strict: bool, vectors: bool = False
            ) -> Iterator[tuple[int, int, Fraction, av.VideoFrame]]:
    """Yield (index, pts, time_base, frame) of the first video stream; ``strict``: FFmpeg errors raise InputError;
    ``vectors``: the decoder exports motion vectors as side data (:func:`motion_vector_share`)."""
    # The log capture encloses the container: closing it joins the decoder's threads, so none of them can log
    # after the log level is put back (PyAV's callback fails on a message that arrives after that).
    guard = _ffmpeg_errors() if strict else contextlib.nullcontext([])
    with guard as errors, open_input(path) as container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        # Pass 2 uses frame + slice threads (decoding is a large share of a fix-drops run). The strict pass 1
        # captures FFmpeg's log, and frame threads log asynchronously: a message arriving after the capture ends
        # can make PyAV print a traceback. Slice threads finish within each decode call.
        stream.thread_type = "SLICE" if strict else "AUTO"
        if vectors:
            stream.codec_context.options = {"export_side_data": "mvs"}
        time_base = stream_time_base(stream)
        timeline = _Timeline(time_base, stream_rate(stream))
        header_count = stream.frames or 0
        index = 0
        try:
            for frame in container.decode(stream):
                if strict and errors:
                    _raise_corrupt(path, index, errors)
                yield index, timeline.pts_of(frame), time_base, frame
                index += 1
        except av.FFmpegError as exc:
            raise InputError(f"{path}: corrupted video, decoding failed after {index} frames: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if strict and errors:
            _raise_corrupt(path, index, errors)
        if strict and header_count and index < header_count:
            raise InputError(
                f"{path}: truncated video: decoded {index} of the {header_count} frames its header lists"
            )


def _raise_corrupt(path: Path, index: int, errors: list) -> None:
    text = str(errors[0][2]).strip()
    raise InputError(f"{path}: corrupted or truncated video near frame {index}: {text}")


def iter_luma(path: str | Path, *, keep_rgb: Container[int] = (), vectors: bool = False) -> Iterator[LumaFrame]:
    """Decode ``path`` to grey frames for analysis, one at a time (each with its decoded frame attached, for
    :meth:`LumaFrame.thumbnail`).

    Args:
        keep_rgb: frames whose index is in it also carry their full RGB picture (``LumaFrame.rgb``: the samples
            the model's settings are chosen on).
        vectors: also give each frame its :func:`motion_vector_share` (``LumaFrame.vectors``; ``None`` where the
            frame has none), until the first B-frame: in a stream with B-frames a P-frame's vectors may point at
            any of several references, so detection cannot use them (``retime.detect.previous_frame_vectors``).

    Raises :class:`InputError` when the file cannot be opened, has no video stream, or is corrupted or truncated
    (any FFmpeg error while demuxing or decoding, or fewer frames than the container lists).
    """
    share_vectors = vectors
    for index, pts, time_base, frame in _decode(Path(path), strict=True, vectors=vectors):
        picture_type = PictureType(frame.pict_type).name
        share_vectors &= picture_type != "B"
        luma = to_luma(frame)
        rgb = to_rgb(frame) if index in keep_rgb else None
        yield LumaFrame(index=index, pts=pts, time=pts * time_base, duration=frame.duration or None, luma=luma,
                        rgb=rgb, picture_type=picture_type,
                        vectors=motion_vector_share(frame) if share_vectors else None, source=frame)


def iter_frames(path: str | Path) -> Iterator[DecodedFrame]:
    """Decode ``path``'s frames as they are stored (native pixel format), one at a time, with exact timestamps.

    Raises :class:`InputError` when the file cannot be opened or decoding fails outright. Unlike :func:`iter_luma`
    it does not police FFmpeg's log: the pipeline calls it only on a file that pass 1 already accepted.
    """
    for index, pts, time_base, frame in _decode(Path(path), strict=False):
        yield DecodedFrame(index=index, pts=pts, time=pts * time_base, duration=frame.duration or None, frame=frame)
