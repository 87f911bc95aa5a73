"""Which encoder and pixel format the output gets: the ``--codec`` names, the container's defaults and what its header
can hold, the pixel format nearest the input's that the encoder takes, and the sizes it refuses."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import av

from retime.defaults import DEFAULTS
from retime.errors import OutputError, UsageError

__all__ = ["CODEC_ALIASES", "CODEC_NAMES", "EncodeSettings", "choose_encoder", "choose_pix_fmt", "fitting_codecs",
           "muxer_for"]

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
#: x264's rc-lookahead (frames) in each preset (x264's own preset table).
X264_LOOKAHEAD = dict(zip(PRESETS, (0, 0, 10, 20, 30, 40, 50, 60, 60, 60)))
#: Frames x264 may hold for its lookahead, counted in 1920x1080 frames: medium's 40 at 1080p and below, fewer above,
#: down to 10 at 3840x2160 (docs/performance.md, "x264's lookahead at large sizes": about 24 MB a frame at 4K).
LOOKAHEAD_1080P_FRAMES = 40
MIN_LOOKAHEAD = 10


def x264_lookahead(width: int, height: int, preset: str) -> int | None:
    """The rc-lookahead retime gives libx264 for a ``width`` x ``height`` video, or ``None`` to keep the preset's.

    x264's lookahead holds each frame it looks at (full size, plus its half-resolution planes), so its memory grows
    with the frame: 40 frames (medium) are about 1 GB at 3840x2160. Above 1920x1080 the lookahead is cut to keep
    that memory about what 1080p needs, never under :data:`MIN_LOOKAHEAD` frames and never above the preset's own.
    """
    if width * height <= 1920 * 1080:
        return None
    cap = max(MIN_LOOKAHEAD, LOOKAHEAD_1080P_FRAMES * 1920 * 1080 // (width * height))
    return cap if cap < X264_LOOKAHEAD.get(preset, 0) else None


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
    hint = (f"use --codec {' or '.join(fits)}, or another extension such as .mkv" if fits else
            "no video codec of this FFmpeg build fits it: use another extension such as .mkv")
    return OutputError(f"{label}: the {container} container cannot hold {encoder} video; {hint}")


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

