"""What a video file holds, read once and kept as frozen facts: :func:`probe` returns a :class:`VideoInfo`.

Time is a :class:`~fractions.Fraction` (seconds, frame rates, time bases) or an integer PTS in the stream's time
base, never a float. The first frame is decoded so that facts only a frame carries (rotation from the display
matrix side data, the colour tags the bitstream signals) are known before any work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import av
import numpy as np

from retime.errors import InputError

__all__ = ["StreamInfo", "VideoInfo", "probe", "open_input", "display_matrix_of"]


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream that retime copies untouched (audio, subtitles, data, attachments)."""

    index: int
    type: str  # "audio", "subtitle", "data", "attachment"
    codec: str | None
    language: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream of a file and the streams beside it.

    Sizes are in pixels; ``frame_rate`` is the average rate in frames per second; ``time_base`` is the unit of
    the stream's integer PTS in seconds; ``duration`` and ``start_time`` are in seconds. ``frame_count`` is the
    container's own count (``None`` where the container has none, e.g. Matroska); the exact count comes from
    decoding (pass 1 of the pipeline).
    """

    path: Path
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # FFmpeg decoder name, e.g. "h264", "hevc"
    width: int
    height: int
    pix_fmt: str  # e.g. "yuv420p", "yuv420p10le"
    frame_rate: Fraction
    time_base: Fraction
    start_time: Fraction | None
    duration: Fraction | None
    frame_count: int | None
    stream_index: int
    start_pts: int | None = None  # PTS of the first decoded frame, in time_base units
    rotation: int = 0  # degrees counter-clockwise, as PyAV's VideoFrame.rotation
    display_matrix: tuple[int, ...] | None = None  # 9 int32 in FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    color_primaries: int = 2  # FFmpeg enum values; 2 is "unspecified"
    color_trc: int = 2
    colorspace: int = 2
    color_range: int = 0  # 0 unspecified, 1 limited ("tv"), 2 full ("pc")
    sample_aspect_ratio: Fraction | None = None
    other_streams: tuple[StreamInfo, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    video_metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def bit_depth(self) -> int:
        """Bits per colour component of the stored pixel format (8 for yuv420p, 10 for yuv420p10le)."""
        return _bit_depth(self.pix_fmt)

    def to_dict(self) -> dict:
        """Plain JSON-ready facts (fractions as strings such as ``"30000/1001"``, durations as float seconds)."""
        return {
            "path": str(self.path),
            "container": self.container,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "pix_fmt": self.pix_fmt,
            "frame_rate": str(self.frame_rate),
            "time_base": str(self.time_base),
            "duration": None if self.duration is None else float(self.duration),
            "frame_count": self.frame_count,
            "rotation": self.rotation,
            "other_streams": [
                {"index": s.index, "type": s.type, "codec": s.codec, "language": s.language}
                for s in self.other_streams
            ],
        }


def _bit_depth(pix_fmt: str) -> int:
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.FFmpegError):  # an unknown name: assume 8 bits
        return 8
    return max((c.bits for c in fmt.components), default=8)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


#: The time base of a stream that states none (seconds per tick): milliseconds, Matroska's.
FALLBACK_TIME_BASE = Fraction(1, 1000)
#: The frame rate of a file that states none anywhere (frames per second): a guess, used only to space frames
#: without timestamps and for CFR output.
FALLBACK_RATE = Fraction(25)


def stream_rate(stream) -> Fraction:
    """A video stream's frame rate (frames per second) as the container states it: the average rate, else FFmpeg's
    guess, else the stream's base rate, else :data:`FALLBACK_RATE` (a raw stream that says nothing)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate and rate > 0 else FALLBACK_RATE


def stream_time_base(stream) -> Fraction:
    """The stream's time base (seconds per PTS tick), or :data:`FALLBACK_TIME_BASE` where it states none."""
    return Fraction(stream.time_base) if stream.time_base else FALLBACK_TIME_BASE


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing; every failure becomes an :class:`InputError` naming the file."""
    path = Path(path)
    _check_path(path)
    try:
        # Tags are bytes from the wild: undecodable ones are kept as surrogates (and written back byte for byte)
        # instead of making a playable file unreadable.
        return av.open(str(path), mode="r", metadata_errors="surrogateescape")
    except av.error.InvalidDataError:
        raise InputError(f"{path}: not a video file (or the file is damaged beyond reading)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)  # FFmpeg's words, without its error number and path
        raise InputError(f"{path}: cannot open it as a video (truncated or damaged?): {reason}") from None


def display_matrix_of(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix side data as 9 integers, or ``None`` when it carries none."""
    for side in frame.side_data:
        if side.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            values = np.frombuffer(bytes(side), dtype=np.int32)
            if values.size == 9:
                return tuple(int(v) for v in values)
    return None


_UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED; for the range it is 0 (AVCOL_RANGE_UNSPECIFIED)


def _tag(frame_value, stream_value, unspecified: int) -> int:
    """The frame's colour tag where it has one, else the stream's (frames carry what the bitstream signals)."""
    for value in (frame_value, stream_value):
        if value is not None and int(value) != unspecified:
            return int(value)
    return unspecified


def _frac(value) -> Fraction | None:
    return None if value is None else Fraction(value)


def probe(path: str | Path) -> VideoInfo:
    """Read the facts of ``path``'s first video stream (decoding only its first frame).

    Raises :class:`InputError` for a missing file, a directory, a file that is not a readable video, a file with
    no video stream, and one whose first frame cannot be decoded.
    """
    path = Path(path)
    with open_input(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(f"{path}: no video stream (found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a codec FFmpeg has no decoder for (e.g. an unknown four-character code)
            raise InputError(f"{path}: the video codec is unknown to this FFmpeg build, so it cannot be decoded")
        first = _first_frame(container, stream, path)

        rate = stream_rate(stream)
        time_base = stream_time_base(stream)
        if stream.duration is not None:
            duration = stream.duration * time_base
        elif container.duration is not None:
            duration = Fraction(container.duration, av.time_base)
        else:
            duration = None
        start_time = None if stream.start_time is None else stream.start_time * time_base
        others = tuple(
            StreamInfo(
                index=s.index,
                type=s.type,
                codec=(s.codec_context.name if s.codec_context is not None else None),
                language=s.metadata.get("language"),
            )
            for s in container.streams
            if s.index != stream.index
        )
        cc = stream.codec_context
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=cc.name,
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            frame_rate=Fraction(rate),
            time_base=time_base,
            start_time=start_time,
            duration=duration,
            frame_count=stream.frames or None,
            stream_index=stream.index,
            start_pts=first.pts,
            rotation=int(first.rotation or 0),
            display_matrix=display_matrix_of(first),
            color_primaries=_tag(first.color_primaries, cc.color_primaries, _UNSPECIFIED),
            color_trc=_tag(first.color_trc, cc.color_trc, _UNSPECIFIED),
            colorspace=_tag(first.colorspace, cc.colorspace, _UNSPECIFIED),
            color_range=_tag(first.color_range, cc.color_range, 0),
            sample_aspect_ratio=_frac(stream.sample_aspect_ratio) or None,
            other_streams=others,
            metadata=MappingProxyType(dict(container.metadata)),
            video_metadata=MappingProxyType(dict(stream.metadata)),
        )


def _first_frame(container, stream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: corrupted video, the first frame cannot be decoded: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    raise InputError(f"{path}: the video stream holds no frames (at least 2 are needed)")
