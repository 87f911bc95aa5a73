"""Image-quality metrics for the benchmark: PSNR and SSIM over 8-bit RGB, and their per-frame aggregation.

PSNR is retime's own (:func:`retime.metrics.psnr`, the one the flow-scale search uses); SSIM comes from
scikit-image (``structural_similarity``, ``data_range=255``, the three colour channels as channels). Both are over
8-bit RGB, so that the numbers are comparable with published figures (Middlebury, UCF101 and Vimeo-90k tables use
RGB PSNR on 8-bit frames). PSNR is infinite for identical frames; nothing here caps it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from skimage.metrics import structural_similarity

from retime.metrics import psnr as core_psnr

__all__ = ["psnr", "ssim", "mse", "average_frame", "Scores", "Agreement", "json_number"]

#: Grey levels spanned by an 8-bit channel: the ``data_range`` of PSNR and SSIM.
DATA_RANGE = 255


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {a.dtype} and {b.dtype}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB frames, got {a.shape}")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two ``(H, W, 3)`` uint8 frames, in squared grey levels."""
    _check_pair(a, b)
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two ``(H, W, 3)`` uint8 RGB frames over all three channels; ``inf`` when they are equal.

    Raises:
        ValueError: the shapes differ, or a frame is not (H, W, 3) uint8.
    """
    _check_pair(a, b)
    return core_psnr(a, b)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (scikit-image defaults: 7x7 uniform window) of two ``(H, W, 3)`` uint8 RGB frames, mean over channels.

    1.0 for equal frames. Frames smaller than 7x7 pixels are refused by scikit-image (``ValueError``).
    """
    _check_pair(a, b)
    return float(structural_similarity(a, b, data_range=DATA_RANGE, channel_axis=-1))


def average_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The plain average of two uint8 frames, rounded half up: the "blend" baseline every interpolator must beat."""
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")
    return ((a.astype(np.uint16) + b.astype(np.uint16) + 1) // 2).astype(np.uint8)


def json_number(value: float | int | None) -> float | int | str | None:
    """A number as strict JSON allows it: ``inf`` becomes the string ``"inf"`` (JSON has no infinity), NaN is refused."""
    if value is None or isinstance(value, int):
        return value
    if math.isnan(value):
        raise ValueError("NaN is not a measurement")
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return round(float(value), 6)


@dataclass
class Scores:
    """Per-frame PSNR (dB) and SSIM of one method against the truth, and their means.

    ``mean_psnr`` is the mean of the per-frame PSNRs (the protocol of docs/benchmarks.md, as in the published
    tables); it is ``inf`` only when some frame is identical to the truth, which ``identical`` counts.
    """

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def add(self, output: np.ndarray, truth: np.ndarray) -> None:
        """Score one ``(H, W, 3)`` uint8 frame against the true frame."""
        self.psnr.append(psnr(output, truth))
        self.ssim.append(ssim(output, truth))

    def extend(self, other: "Scores") -> None:
        self.psnr.extend(other.psnr)
        self.ssim.extend(other.ssim)

    @property
    def frames(self) -> int:
        return len(self.psnr)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr)) if self.psnr else math.nan

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim)) if self.ssim else math.nan

    @property
    def identical(self) -> int:
        return sum(math.isinf(p) for p in self.psnr)

    def to_dict(self, *, per_frame: bool = False) -> dict:
        """JSON form: ``frames``, ``psnr`` (mean, dB), ``ssim`` (mean), ``psnr_min`` (dB), ``identical``."""
        if not self.psnr:
            return {"frames": 0}
        out = {"frames": self.frames, "psnr": json_number(self.mean_psnr), "ssim": json_number(self.mean_ssim),
               "psnr_min": json_number(min(self.psnr)), "identical": self.identical}
        if per_frame:
            out["psnr_per_frame"] = [json_number(p) for p in self.psnr]
            out["ssim_per_frame"] = [json_number(s) for s in self.ssim]
        return out


@dataclass
class Agreement:
    """How closely two implementations agree, frame by frame (e.g. retime against the reference Practical-RIFE).

    ``add(ours, exact)`` takes retime's uint8 frame and the other implementation's frame, uint8 or float in grey
    levels (the reference's float32 output before any 8-bit conversion, so that its truncation does not count as
    a difference). Reported as the worst frame's PSNR (dB; ``inf`` when every frame is identical), the PSNR of the
    MSE pooled over all frames, the largest absolute difference of any channel of any pixel (grey levels) and the
    count of identical frames (every value equal to the other's, rounded).
    """

    sq_err_sum: float = 0.0
    values: int = 0
    worst_psnr: float = math.inf
    max_abs_diff: float = 0.0
    identical: int = 0
    frames: int = 0
    truth_psnr: list[tuple[float, float]] = field(default_factory=list)

    def add(self, a: np.ndarray, b: np.ndarray, truth: np.ndarray | None = None) -> None:
        """Add one frame pair; with ``truth``, also the PSNR of each against it (``b`` rounded to 8 bits first, as
        ``a`` was), for :attr:`truth_psnr_delta`."""
        if a.shape != b.shape:
            raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")
        diff = a.astype(np.float64) - b.astype(np.float64)
        sq = float(np.sum(diff**2))
        self.sq_err_sum += sq
        self.values += diff.size
        frame_psnr = math.inf if sq == 0 else 10 * math.log10(DATA_RANGE**2 / (sq / diff.size))
        self.worst_psnr = min(self.worst_psnr, frame_psnr)
        self.max_abs_diff = max(self.max_abs_diff, round(float(np.abs(diff).max()), 2))
        rounded = np.round(np.clip(b, 0, DATA_RANGE)).astype(a.dtype)
        self.identical += int(np.array_equal(a, rounded))
        self.frames += 1
        if truth is not None:
            self.truth_psnr.append((psnr(a, truth), psnr(rounded, truth)))

    @property
    def truth_psnr_delta(self) -> float | None:
        """Mean PSNR against the true frames of ``a`` minus that of ``b`` rounded (dB): the quality lost (< 0) or
        gained by ``a``'s faster arithmetic, with both sides quantized the same way. Infinite PSNRs are skipped."""
        pairs = [(x, y) for x, y in self.truth_psnr if math.isfinite(x) and math.isfinite(y)]
        if not pairs:
            return None
        return float(np.mean([x for x, _ in pairs]) - np.mean([y for _, y in pairs]))

    @property
    def pooled_psnr(self) -> float:
        if self.values == 0 or self.sq_err_sum == 0:
            return math.inf if self.values else math.nan
        return 10 * math.log10(DATA_RANGE**2 / (self.sq_err_sum / self.values))

    def to_dict(self) -> dict:
        if not self.frames:
            return {"frames": 0}
        return {"frames": self.frames, "psnr_min": json_number(self.worst_psnr),
                "psnr_pooled": json_number(self.pooled_psnr), "max_abs_diff": self.max_abs_diff,
                "identical": self.identical,
                "truth_psnr_delta": None if self.truth_psnr_delta is None else round(self.truth_psnr_delta, 4)}


def mean_or_nan(values: Iterable[float]) -> float:
    values = list(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.mean(values)) if values else math.nan
