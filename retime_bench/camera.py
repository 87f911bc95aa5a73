"""A virtual camera moving smoothly over a large still image: ground truth for timing work at any instant.

Repairs of timestamp gaps and cadences need the true frame at times no source frame was taken. A window panning
(and optionally zooming) over a real photograph gives it: :meth:`VirtualCamera.frame` renders the view at any time
with sub-pixel positions and cubic-spline resampling. :func:`convert` makes the repeat cadence of a frame-rate
conversion that shows the nearest source frame (FFmpeg's ``fps`` filter): 24 fps film in 25 fps repeats one frame in
25, 16.67 fps in 25 repeats every third.

Times are ``Fraction`` seconds; frames are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import ndimage  # scikit-image's own dependency

__all__ = ["VirtualCamera", "convert"]


@dataclass(frozen=True)
class VirtualCamera:
    """A ``width`` x ``height`` window over ``image`` whose top-left corner moves at ``velocity`` from ``start``.

    Attributes:
        image: (H, W, 3) uint8 RGB, larger than the window along the whole path.
        width, height: the window's size (pixels).
        start: (x, y) of the window's top-left corner at time 0 (image pixels).
        velocity: (vx, vy) in image pixels per second.
        zoom: relative change of scale per second (0.05: the view narrows 5 % a second about its top-left corner).
    """

    image: np.ndarray
    width: int
    height: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    zoom: float = 0.0

    def frame(self, time: Fraction | float) -> np.ndarray:
        """The true view at ``time`` seconds: (height, width, 3) uint8 RGB, cubic-spline resampled.

        Raises:
            ValueError: the window leaves the image at that time.
        """
        t = float(time)
        x0, y0 = self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t
        step = 1.0 / (1.0 + self.zoom * t)
        if x0 < 0 or y0 < 0 or x0 + self.width * step > self.image.shape[1] - 1 or \
                y0 + self.height * step > self.image.shape[0] - 1:
            raise ValueError(f"VirtualCamera: the window leaves the {self.image.shape[1]}x{self.image.shape[0]} image "
                             f"at t = {t:.3f} s")
        rows, cols = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        coords = np.stack([y0 + rows * step, x0 + cols * step])
        out = np.empty((self.height, self.width, 3), np.float64)
        for c in range(3):
            out[..., c] = ndimage.map_coordinates(self._planes[c], coords, order=3, mode="reflect", prefilter=False)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    @property
    def _planes(self) -> list[np.ndarray]:
        cached = self.__dict__.get("_spline")
        if cached is None:  # the cubic-spline coefficients, once per camera
            cached = [ndimage.spline_filter(self.image[..., c].astype(np.float64), order=3, mode="reflect")
                      for c in range(3)]
            object.__setattr__(self, "_spline", cached)
        return cached


def convert(source_rate: Fraction, out_rate: Fraction, n_out: int) -> list[int]:
    """Which source frame each of ``n_out`` output frames shows in a nearest-frame rate conversion:
    ``floor(j * source_rate / out_rate + 1/2)`` (ties go up; a repeat is an output equal to the one before)."""
    ratio = Fraction(source_rate) / Fraction(out_rate)
    return [math.floor(j * ratio + Fraction(1, 2)) for j in range(n_out)]


def motion_spread(frames: list[np.ndarray], window: int = 4, measure: str = "difference") -> float:
    """How unevenly the picture moves from frame to frame, without ground truth (dimensionless, 0 for even motion).

    Per consecutive pair a motion value m_j, divided by the median of the ``window`` values on each side so that
    slow changes of content or speed cancel; the result is the coefficient of variation (standard deviation over
    mean) of those ratios. A repeat gives a ratio near 0 and its neighbour one near 2; a frame at the midpoint two
    of 0.5.

    Args:
        frames: (H, W, 3) or (H, W) uint8 frames in presentation order, at least 3.
        measure: ``"difference"``: m_j is the mean absolute difference (grey levels), which grows with the
            displacement for small ones: right for a pan, but a blurrier (synthesized) frame also differs less
            from its neighbours; ``"flow"``: the mean optical-flow magnitude (pixels, scikit-image's iterative
            Lucas-Kanade on grey frames shrunk to about 160 pixels on the short side), which blur does not shrink.
    """
    from retime.detect import difference_scores

    if measure == "flow":
        m = _flow_magnitudes(frames)
    else:
        m = np.asarray(difference_scores([np.ascontiguousarray(f) for f in frames]), dtype=np.float64)
    ratios = []
    for j in range(m.size):
        around = np.concatenate([m[max(0, j - window):j], m[j + 1:j + 1 + window]])
        level = float(np.median(around)) if around.size else 0.0
        if level > 0:
            ratios.append(m[j] / level)
    r = np.asarray(ratios)
    return float(r.std() / r.mean()) if r.size and r.mean() > 0 else 0.0


def _flow_magnitudes(frames: list[np.ndarray]) -> np.ndarray:
    """Mean optical-flow magnitude between consecutive frames (pixels of the full-size frame)."""
    from skimage.registration import optical_flow_ilk
    from skimage.transform import rescale

    shrink = max(1, min(frames[0].shape[:2]) // 160)  # 720p: a quarter; speed, and flow within ILK's reach

    def grey(f: np.ndarray) -> np.ndarray:
        g = f.astype(np.float64).mean(axis=2) if f.ndim == 3 else f.astype(np.float64)
        return rescale(g / 255.0, 1 / shrink, anti_aliasing=True) if shrink > 1 else g / 255.0

    small = [grey(f) for f in frames]
    out = []
    for a, b in zip(small, small[1:]):
        v, u = optical_flow_ilk(a, b, radius=7)
        out.append(float(np.hypot(u, v).mean()) * shrink)
    return np.asarray(out)
