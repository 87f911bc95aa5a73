"""Timing analysis: the nominal frame interval of a stream, timestamp gaps, and regular repeat cadences.

Drops that show in time rather than in pixels (docs/timing.md):

- a **gap**: a VFR recorder (phone, OBS, screen recorder) wrote no frame, so the PTS skips k >= 1 nominal frame
  intervals;
- a **cadence**: a frame-rate conversion repeats frames at regular positions (24 fps film in 25 fps repeats one
  frame in 25, 24p in 30p one in 5, 16.67 fps in 25 one in 3).

Both are found from numbers only: :func:`analyse_timing` takes the integer PTS of every frame and the time base,
:func:`find_cadence` the frame indices of the single repeated frames that :mod:`retime.detect` found. This module
needs numpy and ``fractions`` only: no torch, no PyAV, no files. Times are ``Fraction`` seconds and rates
``Fraction`` frames per second, never float frame rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from retime.defaults import DEFAULTS
from retime.errors import UsageError

__all__ = ["Cadence", "Gap", "Timing", "TimingSettings", "analyse_timing", "find_cadence", "nominal_rate"]

#: Intervals within this share (plus one tick) of each other are one cluster when the most common interval is
#: sought: wide enough to hold a time base's rounding (23.976 fps in 1/1000: 41 and 42 ms, 2.4 %) and capture jitter,
#: narrow enough to keep 25 and 30 fps (40 and 33 ms, 20 %) apart.
CLUSTER_SHARE = 0.1
#: Rates a nominal interval is snapped to when it is within measuring error: integer rates and the NTSC family
#: (N * 1000/1001), e.g. 24000/1001, 30000/1001, 60000/1001.
NTSC = Fraction(1000, 1001)
#: Largest denominator of a cadence period tried (a period of 25/7 frames: 7 repeats in every 25 frames).
MAX_PERIOD_DENOMINATOR = 8
#: Allowance for clock drift and jitter when the measured interval is compared with a standard rate (relative):
#: under the 1e-3 between 30 and 30000/1001 fps, so the two stay apart.
RATE_SLACK = 2e-4


@dataclass(frozen=True)
class TimingSettings:
    """Thresholds of the timing analysis (defaults: :data:`retime.defaults.DEFAULTS`).

    Attributes:
        gap_threshold: an interval of at least this many nominal intervals is a gap (intervals, > 1).
        grid_tolerance: an interval within this many nominal intervals of a whole number of them is on the grid.
        min_on_grid: share of intervals that must be on the grid for the timeline to count as regular (CFR,
            possibly with gaps); under it the stream is irregular VFR and its gaps are not filled.
        cadence_min_repeats: fewest repeats on a pattern for a cadence.
        cadence_min_regularity: smallest regularity (see :class:`Cadence`) for a cadence.

    Raises:
        UsageError: a value out of range.
    """

    gap_threshold: float = DEFAULTS.gap_threshold
    grid_tolerance: float = DEFAULTS.grid_tolerance
    min_on_grid: float = DEFAULTS.min_on_grid
    cadence_min_repeats: int = DEFAULTS.cadence_min_repeats
    cadence_min_regularity: float = DEFAULTS.cadence_min_regularity

    def __post_init__(self) -> None:
        if not self.gap_threshold > 1:
            raise UsageError(f"gap_threshold must be > 1 interval, got {self.gap_threshold}")
        if not 0 < self.grid_tolerance < 0.5:
            raise UsageError(f"grid_tolerance must be in (0, 0.5) intervals, got {self.grid_tolerance}")
        if not 0 < self.min_on_grid <= 1:
            raise UsageError(f"min_on_grid must be in (0, 1], got {self.min_on_grid}")
        if self.cadence_min_repeats < 2:
            raise UsageError(f"cadence_min_repeats must be >= 2, got {self.cadence_min_repeats}")
        if not 0 < self.cadence_min_regularity <= 1:
            raise UsageError(f"cadence_min_regularity must be in (0, 1], got {self.cadence_min_regularity}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Gap:
    """A timestamp gap: the PTS jumps from frame ``index - 1`` to frame ``index`` by ``missing + 1`` intervals.

    Attributes:
        index: the first frame after the gap (B); the frame before it (A) is ``index - 1``.
        missing: k, the number of frame intervals with no frame (>= 1).
        intervals: the measured jump in nominal intervals (e.g. 3.02).
        start, end: times of frames A and B (seconds).
        reason: one line saying why it is a gap.
    """

    index: int
    missing: int
    intervals: float
    start: Fraction
    end: Fraction
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.index, "missing": self.missing, "intervals": round(self.intervals, 3),
                "start": round(float(self.start), 6), "end": round(float(self.end), 6), "reason": self.reason}


@dataclass(frozen=True)
class Timing:
    """What the timestamps of a stream say (:func:`analyse_timing`).

    Attributes:
        n_frames: number of frames.
        interval: the nominal frame interval (seconds): the most common interval, measured over every interval on
            its grid and snapped to a standard rate within measuring error.
        rate: ``1 / interval`` (frames per second).
        time_base: seconds per PTS tick.
        regular: at least ``min_on_grid`` of the intervals are whole multiples of ``interval``: CFR, possibly with
            gaps. ``False``: irregular VFR (mixed rates or free-running timestamps); no gap is reported then.
        on_grid: share of the intervals that are whole multiples of ``interval`` (within ``grid_tolerance``).
        gaps: the gaps, ascending (empty when not ``regular``).
        off_grid: indices ``i`` whose interval to frame ``i + 1`` is off the grid and not a gap (at most 20).
        settings: the thresholds used.
    """

    n_frames: int
    interval: Fraction
    rate: Fraction
    time_base: Fraction
    regular: bool
    on_grid: float
    gaps: tuple[Gap, ...]
    off_grid: tuple[int, ...]
    settings: TimingSettings

    @property
    def missing(self) -> int:
        """Total frame intervals with no frame, over every gap."""
        return sum(g.missing for g in self.gaps)

    @property
    def kind(self) -> str:
        """``"cfr"`` (every interval nominal), ``"cfr-with-gaps"`` or ``"vfr"`` (irregular)."""
        if not self.regular:
            return "vfr"
        return "cfr-with-gaps" if self.gaps else "cfr"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rate": str(self.rate), "interval": str(self.interval),
                "interval_ms": round(float(self.interval) * 1000, 3), "on_grid": round(self.on_grid, 4),
                "missing": self.missing, "gaps": [g.to_dict() for g in self.gaps],
                "off_grid": list(self.off_grid), "settings": self.settings.to_dict()}


def _snap_rate(interval_s: float, tolerance_s: float, declared: Sequence[Fraction]) -> Fraction:
    """The standard rate whose interval is nearest ``interval_s`` within ``tolerance_s``, else the measured one."""
    rate = 1 / interval_s
    candidates = [Fraction(r) for r in declared if r and r > 0]
    candidates += [Fraction(max(1, round(rate))), Fraction(max(1, round(rate / NTSC))) * NTSC]
    best = min(candidates, key=lambda r: abs(1 / r - Fraction(interval_s)))
    if abs(float(1 / best) - interval_s) <= tolerance_s:
        return best
    return Fraction(rate).limit_denominator(1001)


def nominal_rate(pts: Sequence[int], time_base: Fraction, *, declared: Sequence[Fraction] = (),
                 grid_tolerance: float = DEFAULTS.grid_tolerance) -> Fraction:
    """The nominal frame rate of frames at ``pts`` (frames per second, exact ``Fraction``).

    The most common interval (clustered within 10 % plus a tick, ties to the shorter one) is measured again over
    every interval that is a whole number m of it: the sum of those intervals over the sum of their m, so that a
    long stretch of frames — gaps included — averages the time base's rounding away (23.976 fps in 1/1000
    alternates 41 and 42 ms; this gives 41.708 ms). The result snaps to a rate in ``declared`` (e.g. the
    container's), an integer rate or an NTSC rate (N * 1000/1001) when that is within the measuring error
    (one tick over the measured span, plus the spread of the timestamps), else it is the measured rate.

    Args:
        pts: frame timestamps in ``time_base`` ticks, strictly increasing, at least two.
        time_base: seconds per tick (> 0).
        declared: rates the container states, tried first.
        grid_tolerance: how far from a whole multiple an interval may be (in intervals) to count.

    Raises:
        ValueError: fewer than two timestamps, or not strictly increasing.
    """
    return _nominal(np.asarray(pts, dtype=np.int64), Fraction(time_base), declared, grid_tolerance)[0]


def _nominal(pts: np.ndarray, time_base: Fraction, declared: Sequence[Fraction], grid_tolerance: float,
             min_on_grid: float = DEFAULTS.min_on_grid) -> tuple[Fraction, float]:
    """(nominal rate, interval in ticks as measured)."""
    if pts.size < 2:
        raise ValueError(f"nominal_rate: need at least 2 timestamps, got {pts.size}")
    d = np.diff(pts)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0))
        raise ValueError(f"nominal_rate: timestamps must increase strictly; pts[{i}] = {pts[i]}, "
                         f"pts[{i + 1}] = {pts[i + 1]}")
    values = np.unique(d)
    # the cluster with the most intervals; np.argmax takes the first (the shortest interval) on a tie
    ordered = np.sort(d)
    reach = 1 + CLUSTER_SHARE * values
    counts = (np.searchsorted(ordered, values + reach, side="right")
              - np.searchsorted(ordered, values - reach, side="left"))
    v = values[int(np.argmax(counts))]
    base = float(d[np.abs(d - v) <= 1 + CLUSTER_SHARE * v].mean())
    # on a regular grid, re-measure over the whole stream: number every frame on the grid (an interval of x
    # intervals advances round(x), at least 1) and fit a line through the PTS, which a jittered or off-grid
    # interval moves only locally; twice, so the numbering settles. Not on mixed rates: that numbering is wrong.
    g = np.arange(pts.size, dtype=np.float64)
    for _ in range(2):
        x = d / base
        m = np.rint(x)
        if float(((m >= 1) & (np.abs(x - m) <= grid_tolerance)).mean()) < min_on_grid:
            g = np.concatenate(([0.0], np.cumsum(np.maximum(1.0, m))))
            break
        g = np.concatenate(([0.0], np.cumsum(np.maximum(1.0, m))))
        base = float(np.polyfit(g, pts.astype(np.float64), 1)[0])
    # the fitted interval is off by a tick of rounding over the span, plus three standard errors of the slope
    # (the timestamps' jitter), plus clock drift
    residual = pts - (pts[0] + base * g)
    residual = residual - residual.mean()
    spread = float(residual.std()) if residual.size > 2 else 0.0
    span = float(g[-1] - g[0]) or 1.0
    standard_error = spread / math.sqrt(float(((g - g.mean()) ** 2).sum()) or 1.0)
    tolerance_ticks = 1 / span + 3 * standard_error + RATE_SLACK * base
    tb = float(time_base)
    return _snap_rate(base * tb, tolerance_ticks * tb, declared), base


def analyse_timing(pts: Sequence[int], time_base: Fraction, settings: TimingSettings | None = None, *,
                   declared: Sequence[Fraction] = ()) -> Timing:
    """Nominal interval, regularity and gaps of frames at ``pts`` (integer ticks of ``time_base`` seconds).

    An interval of ``x`` nominal intervals is on the grid when ``x`` is within ``grid_tolerance`` of a whole number;
    it is a gap of ``k = round(x) - 1`` missing frames when ``x >= gap_threshold`` (``k`` is at most the interval
    in ticks minus one, so that k frames fit between A and B at distinct PTS). Gaps are only reported on a regular
    timeline (at least ``min_on_grid`` of the intervals on the grid); on an irregular one (mixed rates, free
    running timestamps) a long interval is not a measurement of missing frames.

    Args:
        pts: frame timestamps, strictly increasing, at least two.
        time_base: seconds per tick.
        settings: thresholds (defaults: :data:`retime.defaults.DEFAULTS`).
        declared: rates the container states (see :func:`nominal_rate`).

    Raises:
        ValueError: fewer than two timestamps, or not strictly increasing.
    """
    settings = settings or TimingSettings()
    time_base = Fraction(time_base)
    p = np.asarray(pts, dtype=np.int64)
    rate, _ = _nominal(p, time_base, declared, settings.grid_tolerance, settings.min_on_grid)
    interval = 1 / rate
    step = float(interval / time_base)  # nominal interval in ticks, exact rate
    d = np.diff(p)
    x = d / step
    m = np.rint(x)
    on = (m >= 1) & (np.abs(x - m) <= settings.grid_tolerance)
    on_grid = float(on.mean())
    regular = on_grid >= settings.min_on_grid
    gaps: list[Gap] = []
    off: list[int] = []
    ms = float(interval) * 1000
    for i in np.flatnonzero(x >= settings.gap_threshold if regular else np.zeros_like(on)):
        k = int(min(max(1, int(m[i]) - 1), int(d[i]) - 1))
        if k < 1:
            continue
        where = "" if on[i] else f", {abs(x[i] - m[i]):.2f} off the grid"
        reason = (f"PTS jumps {x[i]:.2f} intervals ({float(d[i] * time_base) * 1000:.1f} ms at a nominal "
                  f"{ms:.3f} ms{where}): {k} frame(s) missing")
        gaps.append(Gap(int(i) + 1, k, float(x[i]), p[i] * time_base, p[i + 1] * time_base, reason))
    gap_at = {g.index - 1 for g in gaps}
    off = [int(i) for i in np.flatnonzero(~on) if int(i) not in gap_at][:20]
    return Timing(n_frames=int(p.size), interval=interval, rate=rate, time_base=time_base, regular=regular,
                  on_grid=on_grid, gaps=tuple(gaps), off_grid=tuple(off), settings=settings)


# --- cadences -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    """Regular repeats: frame ``floor(phase + m * period)`` repeats the frame before it, for every m in the video.

    Attributes:
        period: frames per repeat (a ``Fraction`` >= 2: 25 for 24 fps in 25, 5 for 24p in 30p, 3 for 16.67 fps in
            25, 25/7 for 18 fps in 25).
        phase: offset of the pattern (frames, a ``Fraction`` in [0, period)); ``slots`` are its positions.
        slots: every frame index the pattern puts a repeat at (``0 < slot < n_frames``), ascending.
        hits: how many of the slots are repeats that detection found.
        repeats: how many single repeats detection found in all (on the pattern or not).
        regularity: ``hits / (slots + repeats - hits)``: 1.0 when every slot is a found repeat and every found
            repeat is on a slot; a repeat missed in a still shot or a real drop off the pattern lowers it.
    """

    period: Fraction
    phase: Fraction
    slots: tuple[int, ...]
    hits: int
    repeats: int
    regularity: float

    @property
    def ratio(self) -> Fraction:
        """Source frames per output frame, ``1 - 1 / period`` (24/25 for 24 fps film in 25 fps)."""
        return 1 - 1 / self.period

    def source_rate(self, rate: Fraction) -> Fraction:
        """The rate of the source before the conversion, for a video at ``rate`` (frames per second)."""
        return rate * self.ratio

    def to_dict(self, rate: Fraction | None = None) -> dict[str, Any]:
        data = {"period": str(self.period), "phase": str(self.phase), "first": self.slots[0] if self.slots else None,
                "slots": len(self.slots), "hits": self.hits, "repeats": self.repeats,
                "regularity": round(self.regularity, 4)}
        if rate is not None:
            data["source_rate"] = str(self.source_rate(rate))
        return data


def _slots(period: Fraction, phase: Fraction, n_frames: int) -> np.ndarray:
    """floor(phase + m * period) for every m with 0 < slot < n_frames."""
    count = int((n_frames - phase) / period) + 2
    m = np.arange(count, dtype=np.int64)
    # exact integer arithmetic: floor((phase_num * q + m * p * ...) / den) without floats
    den = math.lcm(period.denominator, phase.denominator)
    num = (phase * den).numerator + m * (period * den).numerator
    s = num // den
    return s[(s > 0) & (s < n_frames)]


def find_cadence(repeats: Sequence[int], n_frames: int, settings: TimingSettings | None = None) -> Cadence | None:
    """The regular pattern that best explains single repeated frames at ``repeats``, or ``None``.

    Candidate periods are p/q (q <= 8) near the median spacing of the repeats refined over the regularly spaced
    ones; each is tried at every phase (in steps of 1/q) and scored by its regularity (:class:`Cadence`) over the
    whole video. The best is a cadence when it has at least ``cadence_min_repeats`` hits and a regularity of at
    least ``cadence_min_regularity``. A pattern covering only part of the video scores low: the repeats it does
    not cover count against it, so a cadence is a property of the whole video.

    Args:
        repeats: frame indices (ascending or not) of repeated frames that are runs of one (longer runs are
            freezes or drops, not a conversion pattern).
        n_frames: frames in the video.
        settings: thresholds (defaults: :data:`retime.defaults.DEFAULTS`).
    """
    settings = settings or TimingSettings()
    found = np.unique(np.asarray(list(repeats), dtype=np.int64))
    found = found[(found > 0) & (found < n_frames)]
    if found.size < settings.cadence_min_repeats:
        return None
    spacing = np.diff(found)
    median = float(np.median(spacing))
    regular = spacing[np.abs(spacing - median) <= max(1.0, 0.5 * median)]
    estimate = float(regular.mean()) if regular.size else median
    candidates: set[Fraction] = set()
    for q in range(1, MAX_PERIOD_DENOMINATOR + 1):
        for p in {math.floor(estimate * q), math.ceil(estimate * q)}:
            if p >= 2 * q:
                candidates.add(Fraction(p, q))
    best: tuple[float, int, Fraction, Fraction, np.ndarray, int] | None = None
    # a pattern worth scoring puts a slot on a found repeat f: phase = f + i/q (mod period), i < q
    sample = found[np.linspace(0, found.size - 1, min(found.size, 16)).round().astype(int)]
    for period in sorted(candidates, key=lambda f: (f.denominator, f)):
        q = period.denominator
        phases = sorted({(int(f) + Fraction(i, q)) % period for f in sample for i in range(q)})
        for phase in phases:
            slots = _slots(period, phase, n_frames)
            if slots.size == 0:
                continue
            hits = int(np.isin(slots, found, assume_unique=True).sum())
            regularity = hits / (slots.size + found.size - hits)
            key = (regularity, hits)
            if best is None or key > best[:2]:
                best = (regularity, hits, period, phase, slots, int(found.size))
    if best is None:
        return None
    regularity, hits, period, phase, slots, total = best
    if hits < settings.cadence_min_repeats or regularity < settings.cadence_min_regularity:
        return None
    return Cadence(period=period, phase=phase, slots=tuple(int(s) for s in slots), hits=hits, repeats=total,
                   regularity=float(regularity))
