"""RGB -> YUV for synthesized frames: the inverse of the decoder's own conversion (retime.media._colour)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from retime.media import rgb_to_frame, to_rgb
from retime.media._colour import SUBSAMPLING, converter
from retime.metrics import psnr

from helpers import clip

# FFmpeg's enum values: colorspace 2 = unspecified (read as BT.601), 1 = BT.709, 9 = BT.2020 NCL;
# range 0 = unspecified (read as limited), 1 = limited ("tv"), 2 = full ("pc").
TAGS = [(2, 0), (1, 1), (9, 1), (5, 2), (1, 2)]


def _random_frame(pix_fmt: str, width: int, height: int, colorspace: int, color_range: int,
                  seed: int = 1) -> av.VideoFrame:
    """A frame of blocky random planes, in ranges no matrix takes outside RGB's (a clipped pixel cannot return)."""
    rng = np.random.default_rng(seed)
    frame = av.VideoFrame(width, height, pix_fmt)
    for k, plane in enumerate(frame.planes):
        low, high = (90, 171) if k == 0 else (108, 149)
        coarse = rng.integers(low, high, (plane.height // 4 + 2, plane.line_size // 4 + 2))
        values = np.kron(coarse, np.ones((4, 4)))[:plane.height, :plane.line_size]
        plane.update(np.ascontiguousarray(values.astype(np.uint8)))
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes]


@pytest.mark.parametrize("pix_fmt", sorted(SUBSAMPLING))
@pytest.mark.parametrize("colorspace,color_range", TAGS)
def test_decoded_frame_round_trips_to_its_own_planes(pix_fmt, colorspace, color_range):
    # 8-bit RGB cannot hold every YUV triple (limited-range luma has finer steps than RGB), so a value may come
    # back one code off; most come back exactly.
    source = _random_frame(pix_fmt, 64, 48, colorspace, color_range)
    assert converter(pix_fmt, colorspace, color_range) is not None
    back = rgb_to_frame(to_rgb(source), pix_fmt, colorspace, color_range)
    assert back.format.name == pix_fmt and (back.width, back.height) == (64, 48)
    assert (int(back.colorspace), int(back.color_range)) == (colorspace, color_range)
    for original, rebuilt in zip(_planes(source), _planes(back)):
        off = np.abs(original.astype(int) - rebuilt.astype(int))
        assert off.max() <= 1 and (off == 0).mean() > 0.75, (pix_fmt, off.max(), (off == 0).mean())


def test_real_frames_survive_storage_much_better_than_libswscale():
    """A decoded frame of a real clip sent back through the writer's conversion: ~52 dB or more, where libswscale's
    unscaled rgb24 -> yuv420p (chroma from one pixel per block) gives about 44 dB."""
    with av.open(str(clip("bikes.mp4"))) as container:
        frames = [f for _, f in zip(range(3), container.decode(video=0))]
    ours, theirs = [], []
    for frame in frames:
        rgb = to_rgb(frame)
        ours.append(psnr(rgb, to_rgb(rgb_to_frame(rgb, frame.format.name, int(frame.colorspace),
                                                  int(frame.color_range)))))
        plain = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=frame.format.name)
        theirs.append(psnr(rgb, to_rgb(plain)))
    assert min(ours) >= 50.0, ours
    assert np.mean(ours) > np.mean(theirs) + 5.0, (ours, theirs)


@pytest.mark.parametrize("size", [(33, 17), (31, 20), (2, 2)])
def test_odd_sizes_keep_the_edge(size):
    width, height = size
    rgb = np.random.default_rng(3).integers(40, 216, (height, width, 3)).astype(np.uint8)
    rgb[:, -1] = (200, 30, 30)  # a red last column: its chroma must not be averaged with padding of another colour
    frame = rgb_to_frame(rgb, "yuv420p", 2, 0)
    assert (frame.width, frame.height) == (width, height)
    back = to_rgb(frame)
    assert back.shape == rgb.shape
    if width % 2:
        assert np.abs(back[:, -1].astype(int) - (200, 30, 30)).max() <= 4


def test_other_formats_go_through_libswscale():
    ramp = np.linspace(30, 220, 16)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0), -1).round().astype(np.uint8)
    assert converter("yuv420p10le", 2, 0) is None
    frame = rgb_to_frame(rgb, "yuv420p10le", 2, 0)
    assert frame.format.name == "yuv420p10le"
    assert psnr(rgb, to_rgb(frame)) > 30.0


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p"])
@pytest.mark.parametrize("width,extra_rows", [(45, 3), (46, 4)])
def test_banded_conversion_equals_the_whole_frame_at_once(pix_fmt, width, extra_rows):
    # the writer converts BAND_ROWS rows at a time (bounded memory at 4K); the bands must join without a seam,
    # also where the last band is short or odd
    from retime.media import _colour

    height = 2 * _colour.BAND_ROWS + extra_rows
    rgb = np.random.default_rng(5).integers(0, 256, (height, width, 3)).astype(np.uint8)
    fast = converter(pix_fmt, 1, 1)
    whole = [np.empty_like(p) for p in fast.planes(rgb)]
    fast._convert_band(rgb, whole)  # one band: the frame at once
    assert all(np.array_equal(a, b) for a, b in zip(_planes(fast.frame(rgb)), whole))


def _affine_decode(fast, planes) -> np.ndarray:
    """What the fitted YUV -> RGB map gives for the planes, chroma repeated over its block, unrounded (float64)."""
    from retime.media._colour import _expand

    height, width = planes[0].shape
    matrix = np.linalg.inv(fast.inverse.astype(np.float64))
    chroma = [_expand(c, fast.sub_y, fast.sub_x)[:height, :width] for c in planes[1:]]
    yuv = np.stack([planes[0], *chroma], axis=-1).astype(np.float64)
    return yuv @ matrix.T + fast.offset


@pytest.mark.parametrize("pix_fmt,colorspace,color_range", [("yuv420p", 2, 0), ("yuv420p", 1, 1), ("yuv422p", 9, 1)])
def test_luma_takes_up_the_error_of_the_shared_chroma(pix_fmt, colorspace, color_range):
    """Where a pixel's colour differs from its block's (fine colour detail, which 4:2:0 shares out), its luma is
    the least-squares value in RGB given the stored chroma, not its own luma as if its chroma were exact: against
    the fitted map, the error is lower than with each pixel's own luma, and not lower with luma one code off."""
    rng = np.random.default_rng(11)
    grey = rng.integers(70, 186, (64, 96, 1))
    rgb = np.clip(grey + rng.integers(-40, 41, (64, 96, 3)), 0, 255).astype(np.uint8)  # colour varies per pixel
    fast = converter(pix_fmt, colorspace, color_range)
    planes = [np.array(p) for p in fast.planes(rgb)]

    def error(luma):
        return float(((_affine_decode(fast, [luma, *planes[1:]]) - rgb) ** 2).mean())

    values = rgb.astype(np.float32)
    own = np.clip(np.rint(values @ fast.inverse[0] - fast.inverse[0] @ fast.offset), 0, 255)
    assert error(planes[0]) < 0.95 * error(own)
    for step in (-1, 1):
        assert error(planes[0]) < error(np.clip(planes[0].astype(int) + step, 0, 255))
