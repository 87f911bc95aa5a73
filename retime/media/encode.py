"""Writing the output: :class:`VideoWriter` encodes the video stream and copies every other stream untouched;
:func:`atomic_output` makes the file appear at its path only when it is complete.

The encoder keeps what the input says about its pictures: pixel format (10-bit stays 10-bit where the codec can),
colour tags (primaries, transfer, matrix, range), sample aspect ratio, rotation (the display matrix) and the
container's and video stream's metadata. Audio, subtitle, data and attachment streams are remuxed packet by packet
(no re-encoding) with their own timestamps, so they stay in sync with a video whose PTS are the input's. A stream
that the output container cannot hold is an :class:`OutputError`, never a silent drop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from retime.defaults import DEFAULTS
from retime.errors import OutputError, UsageError
from retime.media.probe import VideoInfo, open_input

__all__ = [
    "EncodeSettings",
    "VideoWriter",
    "atomic_output",
    "check_output_path",
    "choose_encoder",
    "choose_pix_fmt",
    "temp_path_for",
]

#: What users may type for --codec, and the FFmpeg encoder each one means.
CODEC_ALIASES = {
    "h264": "libx264", "x264": "libx264", "avc": "libx264", "libx264": "libx264",
    "h265": "libx265", "hevc": "libx265", "x265": "libx265", "libx265": "libx265",
    "ffv1": "ffv1",
}
#: Encoders that take --crf and --preset (the x264/x265 family).
X26X = {"libx264", "libx265"}
#: Stream metadata that describes the old encoding and would be wrong on the new one (Matroska statistics tags).
STALE_STREAM_TAGS = {"duration", "encoder", "bps", "number_of_frames", "number_of_bytes", "_statistics_tags",
                     "_statistics_writing_app", "_statistics_writing_date_utc"}


#: The speed presets x264 and x265 share (checked before any work: the encoders would only log an error).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@dataclass(frozen=True)
class EncodeSettings:
    """How the video stream is encoded.

    Attributes:
        codec: ``None`` chooses from the input (H.265 via libx265 for HEVC input when available, else H.264 via
            libx264); or a name from :data:`CODEC_ALIASES` (``"ffv1"`` is lossless).
        crf: constant rate factor for libx264/libx265 (0-51, lower is better; ignored by ffv1).
        preset: x264/x265 speed preset ("ultrafast" ... "veryslow"; ignored by ffv1).
    """

    codec: str | None = None
    crf: int = DEFAULTS.crf
    preset: str = DEFAULTS.preset

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be in 0..51, got {self.crf}")
        if self.preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")


def choose_encoder(requested: str | None, input_codec: str) -> str:
    """The FFmpeg encoder name for ``requested`` (a :data:`CODEC_ALIASES` key) or, when ``None``, for the input.

    Raises:
        OutputError: the name is unknown or this FFmpeg build has no such encoder.
    """
    if requested is None:
        wanted = "libx265" if input_codec == "hevc" and "libx265" in av.codecs_available else "libx264"
    else:
        wanted = CODEC_ALIASES.get(requested.lower())
        if wanted is None:
            raise OutputError(f"unsupported output codec {requested!r}; choose one of: h264, h265, ffv1")
    if wanted not in av.codecs_available:
        raise OutputError(f"output codec {wanted} is not available in this FFmpeg build")
    return wanted


def _layout(pix_fmt: str) -> tuple[int, int, int, bool, bool]:
    """(bits, chroma width at 16 px, chroma height at 16 px, alpha, rgb) of a pixel format."""
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    bits = max((c.bits for c in fmt.components), default=8)
    alpha = any(c.is_alpha for c in fmt.components)
    return bits, fmt.chroma_width(16), fmt.chroma_height(16), alpha, fmt.is_rgb


def choose_pix_fmt(encoder: str, input_pix_fmt: str) -> str:
    """The input's pixel format when ``encoder`` supports it, else the closest one it does.

    Closest: full-range "yuvj" formats map to their plain twin (the range travels as a colour tag); otherwise
    the same bit depth matters most (10-bit stays 10-bit), then the chroma subsampling, then alpha and RGB-ness.
    """
    supported = [f.name for f in (av.Codec(encoder, "w").video_formats or ())]
    if not supported or input_pix_fmt in supported:
        return input_pix_fmt
    if input_pix_fmt.startswith("yuvj") and "yuv" + input_pix_fmt[4:] in supported:
        return "yuv" + input_pix_fmt[4:]
    try:
        want = _layout(input_pix_fmt)
    except (ValueError, av.FFmpegError):
        return "yuv420p" if "yuv420p" in supported else supported[0]

    def distance(name: str) -> tuple:
        try:
            have = _layout(name)
        except (ValueError, av.FFmpegError):
            return (99,)
        bits_down = max(0, want[0] - have[0])  # losing precision is worse than gaining it
        return (bits_down, abs(have[0] - want[0]), abs(have[1] - want[1]) + abs(have[2] - want[2]),
                have[3] != want[3], have[4] != want[4], supported.index(name))

    return min(supported, key=distance)


def _check_size(encoder: str, pix_fmt: str, width: int, height: int, label: Path) -> None:
    """x264 and x265 need even dimensions where chroma is subsampled (4:2:0 both ways, 4:2:2 across)."""
    if encoder not in X26X:
        return
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    odd = (width % 2 and fmt.chroma_width(16) < 16) or (height % 2 and fmt.chroma_height(16) < 16)
    if odd:
        raise OutputError(f"{label}: {encoder} cannot encode {pix_fmt} at an odd size ({width}x{height}); "
                          f"use --codec ffv1 (lossless, any size)")


# --- the output path ------------------------------------------------------------------------------------------


def check_output_path(output: Path, *, input: Path | None = None, overwrite: bool = False) -> None:
    """Refuse an output path before any work starts.

    Raises:
        OutputError: ``output`` is the input file (same path or same file), a directory, exists without
            ``overwrite``, or its folder is missing or not writable.
    """
    output = Path(output)
    if input is not None:
        same = output.resolve() == Path(input).resolve()
        if not same and output.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(output, input)
        if same:
            raise OutputError(f"{output}: the output is the input file; choose another output path")
    if output.is_dir():
        raise OutputError(f"{output}: is a directory; give an output file name")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: already exists (use --overwrite or -y to replace it)")
    folder = output.resolve().parent
    if not folder.is_dir():
        raise OutputError(f"{output}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: the folder {folder} is not writable")
    if not output.suffix:
        raise OutputError(f"{output}: no file extension; name the container, e.g. .mp4 or .mkv")


def temp_path_for(output: Path) -> Path:
    """A hidden, unique temporary path beside ``output`` with the same extension (so the container is the same):
    ``dir/.NAME.retime-XXXXXXXX.part.EXT`` for ``dir/NAME.EXT``."""
    output = Path(output)
    return output.with_name(f".{output.stem}.retime-{secrets.token_hex(4)}.part{output.suffix}")


@contextlib.contextmanager
def atomic_output(output: str | Path, *, input: str | Path | None = None, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; on a clean exit the file moves to ``output``, on any exception
    (including KeyboardInterrupt) the temporary file is removed and ``output`` is left as it was.

    Without ``overwrite`` the final move is a hard link, which fails instead of replacing a file that appeared
    at ``output`` meanwhile (filesystems without hard links fall back to a checked rename).

    Raises:
        OutputError: as :func:`check_output_path`, or the move fails.
    """
    output = Path(output)
    check_output_path(output, input=None if input is None else Path(input), overwrite=overwrite)
    tmp = temp_path_for(output)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # reserve the name
    except OSError as exc:
        raise OutputError(f"{output}: cannot create a temporary file in its folder: {exc.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        _move_into_place(tmp, output, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _move_into_place(tmp: Path, output: Path, overwrite: bool) -> None:
    try:
        if overwrite:
            os.replace(tmp, output)
            return
        try:
            os.link(tmp, output)
        except FileExistsError:
            raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
        except OSError:  # no hard links here (FAT, some network filesystems)
            if output.exists():
                raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
            os.replace(tmp, output)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{output}: cannot move the finished file into place: {exc.strerror}") from None


# --- the writer -----------------------------------------------------------------------------------------------


def _output_error(path: Path, exc: BaseException) -> OutputError:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return OutputError(f"{path}: disk full while writing the output")
    return OutputError(f"{path}: cannot write the output: {exc}")


class VideoWriter:
    """Encode a video stream into ``path`` and copy the input's other streams beside it.

    Args:
        path: the file to write (its extension picks the container).
        info: the input's facts (:func:`retime.media.probe.probe`): size, pixel format, colour tags, rotation,
            metadata, and which other streams to copy from ``info.path``.
        settings: codec, CRF, preset.
        time_base: unit of the PTS given to :meth:`write` (seconds per tick): the input's for fix-drops (PTS kept),
            the output rate's for upsampling.
        rate: the output's frame rate (frames per second), written as the stream's average rate.
        copy_streams: copy the input's audio/subtitle/data/attachment streams (default True).

    The constructor opens the encoder and writes the container header, so an unsupported codec, pixel format or
    stream is reported before any frame is decoded. Not thread-safe: call every method from one thread.

    Raises:
        OutputError: the container cannot be written, the codec is unavailable or refuses the settings, or an
            input stream cannot be stored in this container.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, settings: EncodeSettings = EncodeSettings(),
                 time_base: Fraction, rate: Fraction, copy_streams: bool = True,
                 label: str | Path | None = None) -> None:
        self.path = Path(path)
        self.label = Path(label) if label is not None else self.path  # the name users know (not the temp file)
        self.info = info
        self.time_base = Fraction(time_base)
        self.encoder = choose_encoder(settings.codec, info.codec)
        self.pix_fmt = choose_pix_fmt(self.encoder, info.pix_fmt)
        _check_size(self.encoder, self.pix_fmt, info.width, info.height, self.label)
        self.frames_written = 0
        self._source: av.container.InputContainer | None = None
        self._pending: Iterator[av.Packet] | None = None
        self._next_packet: av.Packet | None = None
        self._stream_map: dict[int, av.stream.Stream] = {}
        self._closed = False
        try:
            self._out = av.open(str(self.path), mode="w")
        except (ValueError, av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.label}: cannot create the output ({exc}); is the extension a video container "
                              f"such as .mp4, .mkv or .mov?") from None
        try:
            self._add_video(settings, Fraction(rate))
            if copy_streams:
                self._add_copies()
            self._copy_metadata()
            self._out.start_encoding()
        except OutputError:
            self._abort()
            raise
        except (ValueError, av.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"{self.label}: cannot encode with {self.encoder} ({self.pix_fmt}, "
                              f"{info.width}x{info.height}): {exc}") from None

    # -- set-up ---------------------------------------------------------------------------------------------------
    def _add_video(self, settings: EncodeSettings, rate: Fraction) -> None:
        info = self.info
        options: dict[str, str] = {}
        if self.encoder in X26X:
            options = {"crf": str(settings.crf), "preset": settings.preset}
            if self.encoder == "libx265":
                options["x265-params"] = "log-level=error"  # x265 prints its banner straight to stderr otherwise
        elif self.encoder == "ffv1":
            options = {"level": "3", "slicecrc": "1"}  # version 3: slices (threads) and per-slice CRCs
        try:
            stream = self._out.add_stream(self.encoder, rate=rate, options=options)
        except ValueError:
            raise OutputError(f"{self.label}: the {self._out.format.long_name} container cannot hold {self.encoder} "
                              f"video; choose another codec or extension (e.g. .mkv)") from None
        stream.width = info.width
        stream.height = info.height
        stream.pix_fmt = self.pix_fmt
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        cc.time_base = self.time_base
        stream.time_base = self.time_base
        cc.color_primaries = info.color_primaries
        cc.color_trc = info.color_trc
        cc.colorspace = info.colorspace
        cc.color_range = info.color_range
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.display_matrix is not None:
            stream.set_display_matrix(info.display_matrix)
        elif info.rotation:
            stream.set_display_rotation(info.rotation)
        stream.metadata.update({k: v for k, v in info.video_metadata.items()
                                if k.lower() not in STALE_STREAM_TAGS and not k.lower().startswith("_statistics")})
        self._video = stream

    def _add_copies(self) -> None:
        if not self.info.other_streams:
            return
        self._source = open_input(self.info.path)
        copied = []
        for src in self._source.streams:
            if src.index == self.info.stream_index:
                continue
            label = f"{src.type} stream #{src.index} ({src.codec_context.name if src.codec_context else 'no codec'})"
            try:
                if src.type == "attachment":
                    dst = self._out.add_attachment(src.name, src.mimetype, src.data)
                else:
                    dst = self._out.add_stream_from_template(src)
            except (ValueError, av.FFmpegError, NotImplementedError) as exc:
                raise OutputError(f"{self.label}: the {self._out.format.long_name} container cannot hold the input's "
                                  f"{label}, and retime never drops a stream; use .mkv ({exc})") from None
            dst.metadata.update(src.metadata)
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                dst.disposition = int(src.disposition)
            if src.type != "attachment":
                self._stream_map[src.index] = dst
                copied.append(src)
        if copied:
            self._pending = iter(self._source.demux(*copied))

    def _copy_metadata(self) -> None:
        self._out.metadata.update({k: v for k, v in self.info.metadata.items() if k.lower() != "encoder"})

    # -- writing --------------------------------------------------------------------------------------------------
    def write(self, frame: av.VideoFrame, pts: int, duration: int | None = None) -> None:
        """Encode ``frame`` (any pixel format; converted when it differs) at ``pts`` (``time_base`` ticks).

        Copied streams are muxed up to this frame's time first, so the file stays interleaved.

        Raises:
            OutputError: encoding or writing failed (e.g. disk full).
        """
        if frame.format.name != self.pix_fmt:
            frame = self._convert(frame)
        frame.pts = pts
        frame.time_base = self.time_base
        if duration:
            frame.duration = duration
        frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder pick frame types, not the input's GOP
        try:
            self._copy_until(pts * self.time_base)
            self._out.mux(self._video.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise _output_error(self.label, exc) from None
        self.frames_written += 1

    def write_rgb(self, rgb: np.ndarray, pts: int, duration: int | None = None) -> None:
        """Encode an (H, W, 3) uint8 RGB image (a synthesized frame) with the output's colour matrix and range."""
        if rgb.shape != (self.info.height, self.info.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"write_rgb: expected ({self.info.height}, {self.info.width}, 3) uint8, "
                             f"got {rgb.shape} {rgb.dtype}")
        self.write(self.from_rgb(rgb), pts, duration)

    def from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        """An (H, W, 3) uint8 RGB image as a frame in the output's pixel format, colour matrix and range."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        return frame.reformat(format=self.pix_fmt, dst_colorspace=self._matrix(),
                              dst_color_range=self.info.color_range or None)

    def _matrix(self) -> int | None:
        # 2 (unspecified) leaves swscale's default (BT.601), which is also what the RGB conversion of decoded
        # frames uses for the same tag, so copies and synthesized frames share one colour matrix.
        return None if self.info.colorspace == 2 else self.info.colorspace

    def _convert(self, frame: av.VideoFrame) -> av.VideoFrame:
        rng = int(frame.color_range or 0) or None
        return frame.reformat(format=self.pix_fmt, src_color_range=rng, dst_color_range=rng)

    def _copy_until(self, time: Fraction | None) -> None:
        """Mux copied-stream packets whose time is before ``time`` seconds (all of them when ``None``)."""
        while self._pending is not None:
            packet = self._next_packet
            if packet is None:
                packet = next(self._pending, None)
                if packet is None:
                    self._pending = None
                    return
            if packet.size == 0:  # the demuxer's end-of-stream marker
                self._next_packet = None
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts
            if time is not None and stamp is not None and stamp * packet.time_base > time:
                self._next_packet = packet
                return
            self._next_packet = None
            packet.stream = self._stream_map[packet.stream_index]
            self._out.mux(packet)

    def close(self) -> None:
        """Flush the encoder, copy the remaining packets of the other streams and write the trailer.

        Raises:
            OutputError: writing failed (e.g. disk full).
        """
        if self._closed:
            return
        try:
            self._out.mux(self._video.encode(None))
            self._copy_until(None)
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            self._abort()
            raise _output_error(self.label, exc) from None
        finally:
            self._closed = True
            if self._source is not None:
                self._source.close()

    def _abort(self) -> None:
        """Close everything without finishing the file (the caller removes it)."""
        self._closed = True
        for closeable in (getattr(self, "_out", None), self._source):
            if closeable is not None:
                with contextlib.suppress(Exception):
                    closeable.close()

    def abort(self) -> None:
        """Stop without finishing the file; the caller removes it (see :func:`atomic_output`)."""
        self._abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()
