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
    # also where the last band is short (and, at odd sizes, not refined)
    from retime.media import _colour

    height = 2 * _colour.BAND_ROWS + extra_rows
    rgb = np.random.default_rng(5).integers(0, 256, (height, width, 3)).astype(np.uint8)
    fast = converter(pix_fmt, 1, 1)
    whole = [np.empty_like(p) for p in fast.planes(rgb)]
    fast._convert_band(rgb, whole)  # one band: the frame at once
    fast._refine_band(rgb, whole)
    assert all(np.array_equal(a, b) for a, b in zip(_planes(fast.frame(rgb)), whole))


def test_refinement_brings_the_decoded_frame_closer_to_the_target():
    """The codes' one-step trials through the decoder bring a picture near what the decoder can show (a decoded
    frame plus a grey level or two of noise, like an interpolated frame) closer than the least-squares codes alone,
    which round each code on its own on a lattice coarser than 8-bit RGB's."""
    from retime.media import _colour

    rng = np.random.default_rng(7)
    decoded_frame = to_rgb(_random_frame("yuv420p", 128, 96, 1, 1, seed=7)).astype(float)
    rgb = np.clip(decoded_frame + rng.normal(0, 1.5, decoded_frame.shape), 0, 255).round().astype(np.uint8)
    fast = converter("yuv420p", 1, 1)
    plain = [np.empty_like(p) for p in fast.planes(rgb)]
    fast._convert_band(rgb, plain)
    refined = [p.copy() for p in plain]
    fast._refine_band(rgb, refined)

    def decoded(planes):
        frame = av.VideoFrame(128, 96, "yuv420p")
        _colour._fill(frame, planes)
        frame.colorspace, frame.color_range = 1, 1
        return to_rgb(frame)

    assert any(not np.array_equal(a, b) for a, b in zip(plain, refined))
    assert psnr(rgb, decoded(refined)) > psnr(rgb, decoded(plain)) + 0.2
    assert np.array_equal(decoded(refined), to_rgb(fast.frame(rgb)))
