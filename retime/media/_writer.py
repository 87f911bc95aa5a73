"""The writer: :class:`VideoWriter` encodes the video stream and copies every other stream of the input untouched.

The encoder keeps what the input says about its pictures: pixel format (10-bit stays 10-bit where the codec can),
colour tags (primaries, transfer, matrix, range), sample aspect ratio, rotation (the display matrix) and the
container's and video stream's metadata. Audio, subtitle, data and attachment streams are remuxed packet by packet
(no re-encoding) with their own timestamps, so they stay in sync with a video whose PTS are the input's. A stream
that the output container cannot hold is an :class:`OutputError`, never a silent drop.
"""

from __future__ import annotations

import contextlib
import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from retime.errors import InputError, OutputError
from retime.media.probe import VideoInfo, open_input
from retime.media._codecs import (STALE_STREAM_TAGS, SVT_SPEED, VPX_SPEED, X26X, EncodeSettings, _check_size, _refused,
                                  choose_encoder, choose_pix_fmt, header_fits, muxer_for, x264_lookahead)
from retime.media._colour import rgb_to_frame
from retime.media._output import _disk_full, _write_error

__all__ = ["VideoWriter"]


def _output_error(path: Path, exc: BaseException) -> OutputError:
    return _write_error(path, exc, "write the output")


def _is_timecode(stream) -> bool:
    """A QuickTime/MP4 timecode track (``tmcd``): a data stream without a codec that carries a ``timecode`` tag."""
    return stream.type == "data" and getattr(stream, "name", None) is None and any(
        k.lower() == "timecode" for k in stream.metadata)


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
        packet_sink: hand each encoded video packet to this callable instead of muxing it; the container is then
            written to memory only (it still sets the encoder up as a file of ``label``'s container would, e.g.
            global headers). :mod:`retime.chunks` keeps a chunk's packets so, and the join muxes them into the one
            output with :meth:`write_packet`.

    The constructor opens the encoder and writes the container header, so an unsupported codec, pixel format or
    stream is reported before any frame is decoded. Not thread-safe: call every method from one thread.

    Raises:
        OutputError: the container cannot be written, the codec is unavailable or refuses the settings, or an
            input stream cannot be stored in this container.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, settings: EncodeSettings = EncodeSettings(),
                 time_base: Fraction, rate: Fraction, copy_streams: bool = True,
                 label: str | Path | None = None, packet_sink: Callable[[av.Packet], None] | None = None) -> None:
        self.path = Path(path)
        self.label = Path(label) if label is not None else self.path  # the name users know (not the temp file)
        self.info = info
        self.time_base = Fraction(time_base)
        self.encoder = choose_encoder(settings.codec, info.codec, muxer_for(self.label), info.bit_depth)
        self.pix_fmt = choose_pix_fmt(self.encoder, info.pix_fmt)
        _check_size(self.encoder, self.pix_fmt, info.width, info.height, self.label)
        self.frames_written = 0
        self._sink = packet_sink
        #: What was not copied as a stream, and why (shown by the CLI, written to the report): one line each.
        self.notes: list[str] = []
        self._open(settings, Fraction(rate), copy_streams, copy_data=True)

    def _open(self, settings: EncodeSettings, rate: Fraction, copy_streams: bool, *, copy_data: bool) -> None:
        info = self.info
        self._source = None
        self._pending = None
        self._next_packet = None
        self._stream_map = {}
        self._closed = False
        self._copied_data = []
        try:
            # surrogateescape: tags are bytes from the wild; undecodable ones are written back byte for byte
            target = io.BytesIO() if self._sink is not None else str(self.path)
            self._out = av.open(target, mode="w", format=muxer_for(self.label),
                                metadata_errors="surrogateescape")
        except OutputError:
            raise
        except (ValueError, av.FFmpegError, OSError) as exc:
            if _disk_full(exc):
                raise _output_error(self.label, exc) from None
            raise OutputError(f"{self.label}: cannot create the output ({getattr(exc, 'strerror', None) or exc}); "
                              f"is the extension a video container such as .mp4, .mkv or .mov?") from None
        try:
            self._add_video(settings, rate)
            if copy_streams:
                self._add_copies(copy_data)
            self._copy_metadata()
            self._out.start_encoding()
        except (OutputError, InputError):
            self._abort()
            raise
        except (ValueError, av.FFmpegError, OSError) as exc:
            self._abort()
            if _disk_full(exc):
                raise _output_error(self.label, exc) from None
            dropped = list(self._copied_data)
            if not header_fits(self._out.format.name, self.encoder):
                raise _refused(self.label, self._out.format.long_name, self.encoder, self._out.format.name) from None
            if dropped:  # a data stream this container refuses: drop it, saying so, and start again
                self._open(settings, rate, copy_streams, copy_data=False)
                self.notes.extend(f"{label} not copied: the {self._out.format.long_name} container cannot hold "
                                  f"it ({getattr(exc, 'strerror', None) or exc})" for label in dropped)
                return
            raise OutputError(f"{self.label}: cannot encode with {self.encoder} ({self.pix_fmt}, "
                              f"{info.width}x{info.height}): {getattr(exc, 'strerror', None) or exc}") from None

    # -- set-up ---------------------------------------------------------------------------------------------------
    def _add_video(self, settings: EncodeSettings, rate: Fraction) -> None:
        info = self.info
        options: dict[str, str] = {}
        if self.encoder in X26X:
            options = {"crf": str(settings.crf), "preset": settings.preset}
            if self.encoder == "libx265":
                options["x265-params"] = "log-level=error"  # x265 prints its banner straight to stderr otherwise
            elif (lookahead := x264_lookahead(info.width, info.height, settings.preset)) is not None:
                options["x264-params"] = f"rc-lookahead={lookahead}"
        elif self.encoder == "ffv1":
            options = {"level": "3", "slicecrc": "1"}  # version 3: slices (threads) and per-slice CRCs
        elif self.encoder == "libvpx-vp9":  # constant quality (b:v 0), x264's preset as libvpx's cpu-used
            options = {"crf": str(settings.crf), "b": "0", "deadline": "good", "row-mt": "1",
                       "cpu-used": str(VPX_SPEED[settings.preset])}
        elif self.encoder == "libsvtav1":
            options = {"crf": str(settings.crf), "preset": str(SVT_SPEED[settings.preset])}
            os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints a banner to stderr otherwise
        elif self.encoder == "libaom-av1":
            options = {"crf": str(settings.crf), "b": "0", "cpu-used": str(VPX_SPEED[settings.preset]),
                       "row-mt": "1"}
        elif self.encoder == "librav1e":
            options = {"qp": str(round(settings.crf * 255 / 63)), "speed": str(min(10, VPX_SPEED[settings.preset] + 2))}
        try:
            stream = self._out.add_stream(self.encoder, rate=rate, options=options)
        except ValueError:
            raise _refused(self.label, self._out.format.long_name, self.encoder, self._out.format.name) from None
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

    def _add_copies(self, copy_data: bool = True) -> None:
        if not self.info.other_streams:
            return
        self._source = open_input(self.info.path)
        copied = []
        for src in self._source.streams:
            if src.index == self.info.stream_index:
                continue
            codec = src.codec_context.name if src.codec_context else getattr(src, "name", None) or "no codec"
            label = f"{src.type} stream #{src.index} ({codec})"
            if _is_timecode(src):
                # The MP4/MOV muxers rebuild a timecode track from the video's "timecode" tag (Matroska keeps the
                # tag); copying the track's packets is refused by both.
                value = next(v for k, v in src.metadata.items() if k.lower() == "timecode")
                if not any(k.lower() == "timecode" for k in self._video.metadata):
                    self._video.metadata["timecode"] = value
                if self._out.format.name not in ("mov", "mp4"):
                    self.notes.append(f"timecode track #{src.index} ({value}) kept as the video's timecode tag: the "
                                      f"{self._out.format.long_name} container has no timecode tracks")
                continue
            if src.type == "data" and not copy_data:
                continue
            if src.codec_context is None and src.type in ("audio", "video", "subtitle"):
                raise InputError(f"{self.info.path}: the input's {src.type} stream #{src.index} has a codec this "
                                 f"FFmpeg build does not know, so it cannot be copied (and retime never drops a "
                                 f"stream)")
            try:
                if src.type == "attachment":
                    dst = self._out.add_attachment(src.name, src.mimetype, src.data)
                else:
                    dst = self._out.add_stream_from_template(src)
            except (ValueError, av.FFmpegError, NotImplementedError) as exc:
                if src.type == "data":
                    self.notes.append(f"{label} not copied: the {self._out.format.long_name} container cannot hold "
                                      f"it ({exc})")
                    continue
                raise OutputError(f"{self.label}: the {self._out.format.long_name} container cannot hold the input's "
                                  f"{label}, and retime never drops a stream; use .mkv ({exc})") from None
            dst.metadata.update(src.metadata)
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                dst.disposition = int(src.disposition)
            if src.type == "data":
                self._copied_data.append(label)
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
            self._mux_video(self._video.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise _output_error(self.label, exc) from None
        self.frames_written += 1

    @property
    def extradata(self) -> bytes:
        """The video encoder's stream header (codec extradata: H.264's SPS/PPS, FFV1's parameters), as muxed."""
        return bytes(self._video.codec_context.extradata or b"")

    def write_packet(self, packet: av.Packet) -> None:
        """Mux ``packet``, one frame of this video stream encoded elsewhere (a chunk's, with this writer's settings:
        :mod:`retime.chunks`), copying the other streams up to its time first. Its ``time_base`` must be set.

        Raises:
            OutputError: writing failed (e.g. disk full).
        """
        stamp = packet.dts if packet.dts is not None else packet.pts
        try:
            if stamp is not None:
                self._copy_until(stamp * packet.time_base)
            packet.stream = self._video
            self._out.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise _output_error(self.label, exc) from None
        self.frames_written += 1

    def _mux_video(self, packets) -> None:
        if self._sink is None:
            self._out.mux(packets)
            return
        for packet in packets:
            self._sink(packet)

    def write_rgb(self, rgb: np.ndarray, pts: int, duration: int | None = None) -> None:
        """Encode an (H, W, 3) uint8 RGB image (a synthesized frame) with the output's colour matrix and range."""
        if rgb.shape != (self.info.height, self.info.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"write_rgb: expected ({self.info.height}, {self.info.width}, 3) uint8, "
                             f"got {rgb.shape} {rgb.dtype}")
        self.write(self.from_rgb(rgb), pts, duration)

    def from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        """An (H, W, 3) uint8 RGB image as a frame in the output's pixel format, colour matrix and range, converted
        so that decoding it gives back ``rgb`` as closely as the format allows (:func:`rgb_to_frame`)."""
        return rgb_to_frame(rgb, self.pix_fmt, self.info.colorspace, self.info.color_range)

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
            self._mux_video(self._video.encode(None))
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

