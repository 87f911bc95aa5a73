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
import fcntl
import io
import os
import re
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from retime.defaults import DEFAULTS
from retime.errors import InputError, OutputError, UsageError
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

#: What users may type for --codec, and the FFmpeg encoders each one means (the first one this FFmpeg build has).
CODEC_ALIASES: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",), "x264": ("libx264",), "avc": ("libx264",), "libx264": ("libx264",),
    "h265": ("libx265",), "hevc": ("libx265",), "x265": ("libx265",), "libx265": ("libx265",),
    "ffv1": ("ffv1",),
    "vp9": ("libvpx-vp9",), "libvpx-vp9": ("libvpx-vp9",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"), "libsvtav1": ("libsvtav1",), "libaom-av1": ("libaom-av1",),
    "librav1e": ("librav1e",),
}
#: The names --help and error messages offer, in this order.
CODEC_NAMES = ("h264", "h265", "ffv1", "vp9", "av1")
#: Default encoders by preference where the container decides (WebM holds only VP8/VP9/AV1 video).
CONTAINER_DEFAULTS = {"webm": ("libvpx-vp9", "libsvtav1", "libaom-av1", "librav1e")}
#: Encoders that take --crf and --preset (the x264/x265 family).
X26X = {"libx264", "libx265"}
#: Stream metadata that describes the old encoding and would be wrong on the new one (Matroska statistics tags).
STALE_STREAM_TAGS = {"duration", "encoder", "bps", "number_of_frames", "number_of_bytes", "_statistics_tags",
                     "_statistics_writing_app", "_statistics_writing_date_utc"}


#: The speed presets x264 and x265 share (checked before any work: the encoders would only log an error).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
#: The same speeds for libvpx-vp9/libaom-av1 (cpu-used, 0 slowest) and SVT-AV1 (preset, 0 slowest).
VPX_SPEED = dict(zip(PRESETS, (8, 7, 6, 5, 5, 4, 3, 2, 1, 0)))
SVT_SPEED = dict(zip(PRESETS, (12, 11, 10, 9, 8, 7, 6, 5, 4, 2)))


@dataclass(frozen=True)
class EncodeSettings:
    """How the video stream is encoded.

    Attributes:
        codec: ``None`` chooses from the input and the container (VP9, else AV1, for WebM; otherwise H.265 via
            libx265 for HEVC input when available, else H.264 via libx264); or a name from :data:`CODEC_ALIASES`
            (``"ffv1"`` is lossless; ``"vp9"``, ``"av1"`` fit WebM).
        crf: constant rate factor (0-51, lower is better), given to x264/x265 as is and to VP9/AV1 as their CRF
            (on their 0-63 scale); ignored by ffv1.
        preset: x264/x265 speed preset ("ultrafast" ... "veryslow"; mapped to VP9/AV1 speeds; ignored by ffv1).

    Raises:
        UsageError: an unknown codec name, a CRF outside 0..51 or an unknown preset.
    """

    codec: str | None = None
    crf: int = DEFAULTS.crf
    preset: str = DEFAULTS.preset

    def __post_init__(self) -> None:
        if self.codec is not None and self.codec.lower() not in CODEC_ALIASES:
            raise UsageError(f"--codec must be one of {', '.join(CODEC_NAMES)}, got {self.codec!r}")
        if not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be in 0..51, got {self.crf}")
        if self.preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (ValueError, av.FFmpegError):
        return False
    return True


def muxer_for(output: str | Path) -> str:
    """FFmpeg's muxer name for ``output``'s extension (FFmpeg's own guess, e.g. ``"mp4"``, ``"matroska"``).

    Raises:
        OutputError: no muxer writes this extension.
    """
    name = Path(output).name
    try:  # a write container opens no file until its header is written, so this touches nothing on disk
        with av.open(f"/nonexistent-retime-dir/{name}", mode="w") as scratch:
            return scratch.format.name
    except (ValueError, av.FFmpegError, OSError):
        raise OutputError(f"{output}: the extension {Path(output).suffix!r} is not a container FFmpeg writes; use "
                          f"e.g. .mp4, .mkv, .mov or .webm") from None


def header_fits(muxer: str, encoder: str) -> bool:
    """Whether the ``muxer`` container takes ``encoder``'s video: a 64x64 header written into memory (FFmpeg's
    codec table says yes to some pairs that the muxer then refuses, such as VP9 in QuickTime)."""
    try:
        with av.open(io.BytesIO(), mode="w", format=muxer) as scratch:
            stream = scratch.add_stream(encoder, rate=25, options=_QUIET.get(encoder, {}))
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            scratch.start_encoding()
    except (ValueError, av.FFmpegError, OSError):
        return False
    return True


_QUIET = {"libx265": {"x265-params": "log-level=error"}}


def fitting_codecs(muxer: str) -> list[str]:
    """The :data:`CODEC_NAMES` whose encoder this FFmpeg build has and the ``muxer`` container holds."""
    os.environ.setdefault("SVT_LOG", "1")
    fits = []
    for name in CODEC_NAMES:
        encoder = next((e for e in CODEC_ALIASES[name] if _has_encoder(e)), None)
        if encoder is not None and header_fits(muxer, encoder):
            fits.append(name)
    return fits


def _refused(label: Path, container: str, encoder: str, muxer: str) -> OutputError:
    fits = fitting_codecs(muxer)
    hint = f"use --codec {' or '.join(fits)}" if fits else "no codec of this FFmpeg build fits it"
    return OutputError(f"{label}: the {container} container cannot hold {encoder} video; {hint}, or another "
                       f"extension such as .mkv")


def _max_bits(encoder: str) -> int:
    formats = av.Codec(encoder, "w").video_formats or ()
    return max((max((c.bits for c in f.components), default=8) for f in formats), default=8)


def choose_encoder(requested: str | None, input_codec: str, muxer: str | None = None, bits: int = 8) -> str:
    """The FFmpeg encoder name for ``requested`` (a :data:`CODEC_ALIASES` key) or, when ``None``, the default for
    the input and the output container ``muxer`` (H.265 for HEVC input, else H.264; for WebM VP9, else AV1, the
    first that keeps the input's ``bits`` per component where one does).

    Raises:
        UsageError: the name is not one of :data:`CODEC_ALIASES`.
        OutputError: this FFmpeg build has no encoder for it.
    """
    if requested is None:
        preference = [e for e in CONTAINER_DEFAULTS.get(muxer or "", ()) if _has_encoder(e)]
        wanted = next((e for e in preference if _max_bits(e) >= bits), preference[0] if preference else None)
        if wanted is None:
            wanted = "libx265" if input_codec == "hevc" and _has_encoder("libx265") else "libx264"
    else:
        candidates = CODEC_ALIASES.get(requested.lower())
        if candidates is None:
            raise UsageError(f"--codec must be one of {', '.join(CODEC_NAMES)}, got {requested!r}")
        wanted = next((e for e in candidates if _has_encoder(e)), candidates[0])
    if not _has_encoder(wanted):
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


#: The fallback temporary name: ``.NAME.retime-PID-XXXXXXXX.part.EXT``. The PID and an advisory lock held for the
#: whole run tell a later run whether its writer is gone (then the file is debris and is removed).
TEMP_NAME = re.compile(r"^\..*\.retime-(?P<pid>\d+)-[0-9a-f]{8}\.part(\.[^.]*)?$")


def temp_path_for(output: Path) -> Path:
    """A hidden, unique temporary path beside ``output`` with the same extension and this process's PID:
    ``dir/.NAME.retime-PID-XXXXXXXX.part.EXT`` for ``dir/NAME.EXT`` (see :data:`TEMP_NAME`)."""
    output = Path(output)
    return output.with_name(f".{output.stem}.retime-{os.getpid()}-{secrets.token_hex(4)}.part{output.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that killed runs (SIGKILL, a power cut) left in ``folder``; return them.

    A file counts as left over only when its name matches :data:`TEMP_NAME`, its PID is not a running process
    and nobody holds its lock (a live writer holds an exclusive ``flock`` until it finishes).
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = TEMP_NAME.match(name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        path = Path(folder) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            removed.append(path)
        except OSError:  # locked (a writer on another machine), or not ours to remove
            pass
        finally:
            os.close(fd)
    return removed


def _open_unnamed(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (``O_TMPFILE``: it vanishes with the process unless linked), or ``None``
    where the file system or the platform has none, or ``/proc`` (needed to link it) is missing."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError:  # EOPNOTSUPP, EISDIR (old kernels), EINVAL...
        return None


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _write_error(output: Path, exc: BaseException, doing: str) -> OutputError:
    """One OutputError that names ``output`` (never a temporary name) and says "disk full" when it is."""
    if _disk_full(exc):
        return OutputError(f"{output}: disk full (no space left on the device of {Path(output).resolve().parent}): "
                           f"cannot {doing}; nothing was written")
    reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{output}: cannot {doing}: {reason}")


class StagedOutput:
    """The output of one run while it is being written; made by :func:`atomic_output`.

    ``path`` is what the writer opens (an unnamed ``O_TMPFILE`` file through ``/proc/self/fd`` where the file
    system has them; else a hidden temporary file beside the output, locked for the run); ``muxer`` is the FFmpeg
    container the final name asks for. :meth:`attach` adds a small file (the ``--report``) that appears together
    with the video.
    """

    def __init__(self, output: Path, overwrite: bool) -> None:
        self.output = output
        self.overwrite = overwrite
        self.muxer = muxer_for(output)
        self.folder = output.resolve().parent
        self._attachments: list[tuple[Path, bytes]] = []
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final) of the attachments
        self.name: Path | None = None  # the visible temporary name (fallback only)
        self.fd = _open_unnamed(self.folder)
        if self.fd is None:
            self.name, self.fd = self._named_temp(output)
        self.path = Path(f"/proc/self/fd/{self.fd}") if os.path.isdir("/proc/self/fd") else self.name

    def _named_temp(self, final: Path, doing: str = "create a temporary file in its folder") -> tuple[Path, int]:
        name = temp_path_for(final)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise _write_error(final, exc, doing) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends: a later run leaves the file alone
        return name, fd

    def attach(self, path: str | Path, data: bytes) -> None:
        """Commit ``data`` to ``path`` together with the video: written beside it now, moved into place right after
        the video (and the video removed again if that fails). Only before the ``with`` block ends."""
        self._attachments.append((Path(path), data))
        remove_stale_temporaries(Path(path).resolve().parent)

    # -- commit ---------------------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Make the video (then its attachments) appear at their paths, complete and on disk."""
        try:
            os.fsync(self.fd)  # a power cut right after the rename must not leave an empty OUT
        except OSError as exc:
            raise _write_error(self.output, exc, "write the output") from None
        for path, data in self._attachments:
            self._stage_attachment(path, data)
        self._link_video()
        for i, (tmp, final) in enumerate(self._staged):
            try:
                os.replace(tmp, final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self.output.unlink()  # not one without the other
                for later, _ in self._staged[i:]:
                    with contextlib.suppress(OSError):
                        later.unlink()
                self._staged = []
                raise _write_error(final, exc, "write the report") from None
        self._staged = []
        _sync_folder(self.folder)

    def _stage_attachment(self, path: Path, data: bytes) -> None:
        name, fd = None, None
        try:
            name, fd = self._named_temp(path, "write the report")
            self._staged.append((name, path))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            raise _write_error(path, exc, "write the report") from None
        finally:
            if fd is not None:
                os.close(fd)

    def _link_video(self) -> None:
        output = self.output
        try:
            if self.name is None:  # the unnamed file gets a name: the final one, or a temporary one to rename
                target = self.folder / (output.name if not self.overwrite else temp_path_for(output).name)
                try:
                    _link_unnamed(self.fd, target)
                except FileExistsError:
                    raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
                if self.overwrite:
                    self.name = target
                    os.replace(target, output)
                    self.name = None
                return
            if self.overwrite:
                os.replace(self.name, output)
                return
            try:
                os.link(self.name, output)
            except FileExistsError:
                raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
            except OSError:  # no hard links here (FAT, some network filesystems)
                if output.exists():
                    raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
                os.replace(self.name, output)
        except OutputError:
            raise
        except OSError as exc:
            raise _write_error(output, exc, "move the finished file into place") from None

    def discard(self) -> None:
        """Remove every temporary file; close the descriptor (an unnamed file then vanishes)."""
        for tmp, _ in self._staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._staged = []
        if self.name is not None:
            with contextlib.suppress(OSError):
                self.name.unlink()
            self.name = None
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def write_atomically(path: str | Path, data: bytes, *, what: str = "the report") -> None:
    """Write a small file (a report) so that it appears complete or not at all, through a locked temporary name
    beside it that a later run removes if this process is killed.

    Raises:
        OutputError: the folder is missing, not writable or full (the message names ``path``).
    """
    path = Path(path)
    remove_stale_temporaries(path.resolve().parent)
    fd, tmp = None, None
    try:
        tmp = temp_path_for(path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _write_error(path, exc, f"write {what}") from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _link_unnamed(fd: int, target: Path) -> None:
    """Give the unnamed file ``fd`` the name ``target`` (``linkat`` of ``/proc/self/fd/N``, following the link).

    Python calls ``linkat`` (which can follow) only when given a directory descriptor; otherwise it calls plain
    ``link``, which links the magic symlink itself and fails with EXDEV.
    """
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(f"/proc/self/fd/{fd}", target.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(output: str | Path, *, input: str | Path | None = None,
                  overwrite: bool = False) -> Iterator[StagedOutput]:
    """Stage ``output``: yield a :class:`StagedOutput` whose ``path`` the writer fills; on a clean exit the file
    appears at ``output`` (with its attachments), on any exception (including KeyboardInterrupt) nothing appears
    and ``output`` is left as it was. A killed process (SIGKILL, a power cut) leaves nothing where the file system
    has unnamed files (``O_TMPFILE``: ext4, XFS, Btrfs, tmpfs), else a hidden temporary file that the next run in
    that folder removes (:func:`remove_stale_temporaries`).

    Without ``overwrite`` the final link fails instead of replacing a file that appeared at ``output`` meanwhile.

    Raises:
        OutputError: as :func:`check_output_path`; the extension is no container; the folder is full or the move
            fails.
    """
    output = Path(output)
    check_output_path(output, input=None if input is None else Path(input), overwrite=overwrite)
    remove_stale_temporaries(output.resolve().parent)
    staged = StagedOutput(output, overwrite)
    try:
        yield staged
        staged.commit()
    finally:
        staged.discard()


# --- the writer -----------------------------------------------------------------------------------------------


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
        self.encoder = choose_encoder(settings.codec, info.codec, muxer_for(self.label), info.bit_depth)
        self.pix_fmt = choose_pix_fmt(self.encoder, info.pix_fmt)
        _check_size(self.encoder, self.pix_fmt, info.width, info.height, self.label)
        self.frames_written = 0
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
            self._out = av.open(str(self.path), mode="w", format=muxer_for(self.label),
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
