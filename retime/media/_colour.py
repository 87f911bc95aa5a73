"""RGB -> planar 8-bit YUV for synthesized frames: the least-squares inverse of the decoder's own YUV -> RGB.

libswscale's unscaled rgb24 -> yuv420p takes each 2x2 block's chroma from one pixel, so a decoded frame sent
straight back through it comes out about 44 dB from itself: storing a perfect interpolated frame would cost more
than the model's own error. The decoder's conversion (libswscale, nearest-neighbour chroma) is affine per pixel
in (Y, U, V) with chroma shared by each subsampling block. The least-squares inverse in RGB takes each block's
chroma as the mean of its pixels' chroma and each pixel's luma as its own, corrected for what the stored chroma
misses at that pixel. The affine map is measured on the running libswscale for each colour matrix and range, not
copied from a standard, so the round trip holds for the library the user has; where the measurement does not fit
(another upsampling, a pixel format not listed), :func:`rgb_to_frame` falls back to libswscale. The codes are
chosen for that affine map, the conversion every decoder approximates, and not for libswscale's own fixed-point
rounding: codes tuned to one decoder's rounding decode worse in the others (docs/quality.md, "The product path
against the model").
"""
from __future__ import annotations

import functools
import logging

import av
import numpy as np

from retime.media.decode import to_rgb

log = logging.getLogger(__name__)

# Planar 8-bit YUV formats: (horizontal, vertical) chroma subsampling factors.
SUBSAMPLING = {"yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1),
               "yuv444p": (1, 1), "yuvj444p": (1, 1)}
# The fit is accepted when it explains the decoder's output to within its own 8-bit rounding (RMS of a uniform
# rounding error is 0.29; libswscale's fixed-point tables add a little).
FIT_RMS = 0.75
# Rows converted at a time (even, for 4:2:0): a band's float temporaries stay in the caches and a 4K frame's
# conversion holds a few MB instead of a few hundred.
BAND_ROWS = 64


class YuvConverter:
    """Converts (H, W, 3) uint8 RGB into one frame of an 8-bit planar YUV format.

    ``matrix`` (3, 3) float64 maps (Y, U, V) code values to RGB and ``offset`` (3,) is added, as measured by
    :func:`converter`; the instance applies the inverse per pixel and averages chroma over each subsampling block.
    """

    def __init__(self, pix_fmt: str, matrix: np.ndarray, offset: np.ndarray, colorspace: int, color_range: int):
        self.pix_fmt = pix_fmt
        self.sub_x, self.sub_y = SUBSAMPLING[pix_fmt]
        self.inverse = np.linalg.inv(matrix).astype(np.float32)
        self.offset = offset.astype(np.float32)
        # RGB error of a pixel stored as (Y + dY, U + dU, V + dV) is matrix @ d; its squared norm d^T G d with
        # G = matrix^T matrix is least for dY = -(G[0,1] dU + G[0,2] dV) / G[0,0] (the chroma's error projected on
        # luma's grey axis): these are the two coefficients.
        gram = matrix.T @ matrix
        self.luma_for_chroma = (np.float32(gram[0, 1] / gram[0, 0]), np.float32(gram[0, 2] / gram[0, 0]))
        self.colorspace = colorspace
        self.color_range = color_range

    def planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Y (H, W), U (ceil(H/sy), ceil(W/sx)), V (same)) uint8 planes of an (H, W, 3) uint8 RGB image."""
        height, width = rgb.shape[:2]
        chroma_shape = (-(-height // self.sub_y), -(-width // self.sub_x))
        out = (np.empty((height, width), np.uint8), np.empty(chroma_shape, np.uint8), np.empty(chroma_shape, np.uint8))
        self._convert(rgb, out)
        return out

    def _convert(self, rgb: np.ndarray, out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Write the planes of ``rgb`` into ``out`` (Y, U, V uint8 arrays or views), :data:`BAND_ROWS` rows at a
        time: the float temporaries of a whole 4K frame would be several hundred MB."""
        height = rgb.shape[0]
        sy = self.sub_y
        for top in range(0, height, BAND_ROWS):
            bottom = min(top + BAND_ROWS, height)
            self._convert_band(rgb[top:bottom], [out[0][top:bottom], out[1][top // sy:-(-bottom // sy)],
                                                 out[2][top // sy:-(-bottom // sy)]])

    def _convert_band(self, rgb: np.ndarray, out: list[np.ndarray]) -> None:
        height, width = rgb.shape[:2]
        sx, sy = self.sub_x, self.sub_y
        pad_h, pad_w = -height % sy, -width % sx
        if pad_h or pad_w:  # an odd edge's chroma sample covers the edge pixel alone: replicate it
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        values = rgb.astype(np.float32)
        inverse, shift = self.inverse, self.inverse @ self.offset  # (Y, U, V) = inverse @ (rgb - offset)
        # Chroma is linear in RGB, so the block mean of per-pixel chroma is the chroma of the block-mean RGB.
        block = values
        if sy == 2:
            block = block[0::2] + block[1::2]
        if sx == 2:
            block = block[:, 0::2] + block[:, 1::2]
        if sx * sy > 1:
            block = block * np.float32(1 / (sx * sy))
        chroma = []
        for k, target in ((1, out[1]), (2, out[2])):
            plane = block @ inverse[k] - shift[k]
            np.rint(plane, out=plane)
            np.clip(plane, 0, 255, out=plane)
            target[...] = plane
            chroma.append(plane)
        # Luma absorbs what it can of each pixel's chroma error (its own chroma against the block's, stored
        # rounded): the per-pixel least squares in RGB given the stored chroma (see luma_for_chroma).
        luma = values @ inverse[0] - shift[0]
        for k, plane in ((1, chroma[0]), (2, chroma[1])):
            error = _expand(plane, sy, sx) - (values @ inverse[k] - shift[k])
            luma -= self.luma_for_chroma[k - 1] * error
        luma = luma[:height, :width]
        np.rint(luma, out=luma)
        np.clip(luma, 0, 255, out=luma)
        out[0][...] = luma

    def frame(self, rgb: np.ndarray) -> av.VideoFrame:
        """An (H, W, 3) uint8 RGB image as an ``av.VideoFrame`` in this format, tagged with its matrix and range."""
        height, width = rgb.shape[:2]
        frame = av.VideoFrame(width, height, self.pix_fmt)
        views = []
        for plane in frame.planes:  # written in place: rows are padded to the line size
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
            rows[:, plane.width:] = 0  # FFmpeg does not clear the padding: keep the frame's bytes deterministic
            views.append(rows[:, :plane.width])
        self._convert(rgb, tuple(views))
        frame.colorspace = self.colorspace
        frame.color_range = self.color_range
        return frame


def _expand(plane: np.ndarray, sy: int, sx: int) -> np.ndarray:
    """A chroma plane repeated over its subsampling blocks (the decoder's nearest-neighbour upsampling)."""
    if sy > 1:
        plane = plane.repeat(sy, axis=0)
    if sx > 1:
        plane = plane.repeat(sx, axis=1)
    return plane


def _fill(frame: av.VideoFrame, planes) -> None:
    for plane, values in zip(frame.planes, planes):
        buffer = np.zeros((plane.height, plane.line_size), np.uint8)  # rows are padded to the line size
        buffer[:, :values.shape[1]] = values
        plane.update(buffer)


@functools.lru_cache(maxsize=16)
def converter(pix_fmt: str, colorspace: int, color_range: int) -> YuvConverter | None:
    """The converter for frames tagged ``colorspace`` / ``color_range`` (FFmpeg's enum values), or ``None``.

    Measures the decoder's YUV -> RGB (:func:`retime.media.decode.to_rgb`) on a seeded random 64x64 frame (mid-range
    values, so that few pixels clip) whose chroma is constant over each subsampling block and fits an affine map by least squares over the pixels no
    channel clips. ``None`` when ``pix_fmt`` is not an 8-bit planar YUV format listed in ``SUBSAMPLING`` or the
    fit's RMS residual exceeds ``FIT_RMS`` grey levels (the decoder does not upsample chroma as assumed).
    """
    if pix_fmt not in SUBSAMPLING:
        return None
    sx, sy = SUBSAMPLING[pix_fmt]
    size = 64
    rng = np.random.default_rng(0)
    luma = rng.integers(48, 209, (size, size)).astype(np.uint8)
    chroma = [rng.integers(64, 193, (size // sy, size // sx)).astype(np.uint8) for _ in range(2)]
    frame = av.VideoFrame(size, size, pix_fmt)
    _fill(frame, [luma, *chroma])
    frame.colorspace = colorspace
    frame.color_range = color_range
    rgb = to_rgb(frame).astype(np.float64).reshape(-1, 3)
    up = [c.repeat(sy, 0).repeat(sx, 1).ravel() for c in chroma]
    design = np.stack([luma.ravel(), up[0], up[1], np.ones(size * size)], axis=1).astype(np.float64)
    inside = np.all((rgb > 0) & (rgb < 255), axis=1)
    if inside.sum() < 200:
        return None
    coefficients, *_ = np.linalg.lstsq(design[inside], rgb[inside], rcond=None)  # (4, 3)
    residual = rgb[inside] - design[inside] @ coefficients
    rms = float(np.sqrt(np.mean(residual ** 2)))
    if rms > FIT_RMS or abs(np.linalg.det(coefficients[:3].T)) < 1e-6:
        log.debug("RGB -> %s: the decoder's conversion is not affine with block chroma (RMS %.2f); "
                  "libswscale converts synthesized frames", pix_fmt, rms)
        return None
    return YuvConverter(pix_fmt, coefficients[:3].T, coefficients[3], colorspace, color_range)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colorspace: int, color_range: int) -> av.VideoFrame:
    """An (H, W, 3) uint8 RGB image as a frame in ``pix_fmt`` whose decoding gives back ``rgb`` most closely.

    ``colorspace`` and ``color_range`` are the output's tags (FFmpeg enum values; 2 and 0 mean unspecified, which
    the decoder reads as BT.601 and limited range). Formats :func:`converter` cannot handle go through libswscale.
    """
    fast = converter(pix_fmt, colorspace, color_range)
    if fast is not None:
        return fast.frame(rgb)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    # 2 (unspecified) leaves swscale's default (BT.601), the one the decoder's RGB conversion uses for that tag.
    return frame.reformat(format=pix_fmt, dst_colorspace=None if colorspace == 2 else colorspace,
                          dst_color_range=color_range or None)
