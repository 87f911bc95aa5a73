"""Duplicate-frame (dropped-frame) detection and scene-cut detection on per-frame difference scores.

For consecutive frames I_t and I_t+1 the pixel loss is L = sum_x |I_t(x) - I_t+1(x)|, and
frame t+1 is a duplicate ("dropped-frame index") when L <= T, with T depending on the resolution. retime divides
L by the pixel count, so every score and threshold here is a *mean absolute difference per pixel in 8-bit grey
levels* (0-255) and one value works at every resolution: ``L <= T`` is ``score <= threshold`` with
``T = threshold * pixel_count``.

A fixed cut alone does not separate duplicates from slow motion once the video has been compressed: coding noise
lifts true duplicates above the slowest real motion (the scores measured: docs/detection.md, "Why one threshold is
not enough"). So the threshold is a ceiling, and a
duplicate must also be a sharp *dip* against the motion around it. Per score ``s[i]`` (frame i+1 against frame i):

    duplicate  if  s[i] <= floor                                   (identical up to coding noise)
               or  s[i] <= max(threshold, deep_ratio * motion[i])  (small, or a very deep dip)
                   and motion[i] >= min_motion                     (there is motion to dip from)
                   and s[i] <= dip_ratio * motion[i]               (a dip against the neighbourhood)
                   and s[i] <= dip_ratio * the scores just before and just after its run   (a sharp one)

``motion[i]`` is a robust local motion level: the median of the nearest ``window`` scores on each side that are
neither duplicates nor cuts, the larger side taken (:func:`local_motion`); duplicates are found and left out
round after round (:func:`find_duplicates`), so that a compressed freeze is recognised as a whole. A nearly
static shot (all scores low, no dip, or too little motion for a dip to mean anything) has no duplicate; a run of
more than ``max_run`` duplicates is an intentional pause, reported as a freeze and not repaired.

Scene cuts: a *candidate* is ``s[i] > scene_cut``, or a spike against the neighbourhood (``s[i] >= cut_min`` and
``s[i] >= cut_ratio * expected``, where ``expected`` is the local motion times k+1 right after a run of k
duplicates, because the first frame after a run has moved for k+1 frame intervals). Fast motion makes such
candidates too (a fast pan differs by 40-55 grey levels per frame), so when the caller gives the colour change of
each pair (:func:`colour_change` of two :func:`colour_histogram`, a motion-robust measure: a pan keeps the colours
of the picture, a new shot brings others) a candidate is a cut only if its colour change is at least
``cut_colour``; the others are reported as fast motion and interpolated. A score of at least ``cut_min`` whose
colours change by ``colour_cut`` or more is a cut too, spike or not (a cut between shots of the same brightness).
Nothing is interpolated across a cut.

This module needs numpy only: no torch, no PyAV, no files. Scores come from :func:`frame_difference` on the grey
frames that ``retime.media.decode.iter_luma`` yields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retime.defaults import DEFAULTS
from retime.errors import UsageError

#: A side's motion level is only trusted with at least this many neighbour scores (neither duplicates nor cuts);
#: with fewer on both sides together (a clip of a few frames) only the ``floor`` rule applies. Three values are
#: the fewest whose median ignores one outlier.
MIN_MOTION_SUPPORT = 3
#: The neighbours that give the local motion level lie at most this many windows away (see :func:`local_motion`):
#: far enough to see past a freeze of a few seconds, near enough to stay in the same stretch of motion.
MOTION_REACH = 4
#: Rounds of re-estimating the local motion without the duplicates found so far (see :func:`find_duplicates`).
#: Each round eats into a compressed freeze from both ends; the fixed point comes after a few rounds in practice.
MAX_ROUNDS = 50


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference between two frames, in 8-bit grey levels per pixel (and per channel).

    This is the pixel loss ``sum_x |a(x) - b(x)|`` of the module docstring, divided by the number of samples so
    that it does not depend on the resolution.

    Args:
        a, b: ``uint8`` arrays of the same shape, ``(H, W)`` luma or ``(H, W, C)`` (e.g. RGB).

    Returns:
        The mean of ``|a - b|`` over all pixels and channels, a float in [0, 255] (grey levels).

    Raises:
        ValueError: the shapes differ (the message names both), an array is empty or not 2-D/3-D, or the dtype is
            not ``uint8``.
    """
    if a.shape != b.shape:
        raise ValueError(f"frame_difference: frames differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"frame_difference: expected a non-empty (H, W) or (H, W, C) frame, got shape {a.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"frame_difference: expected uint8 frames, got {a.dtype} and {b.dtype}")
    # |a - b| = max(a, b) - min(a, b) stays in uint8 without overflow: one byte per sample, no int16 or float
    # copies of a large frame (docs/performance.md, "Notes from the code").
    d = np.maximum(a, b)
    d -= np.minimum(a, b)
    return float(d.sum(dtype=np.uint64)) / d.size


#: Levels per channel of :func:`colour_histogram` (8 x 8 x 8 = 512 colours): coarse enough that motion and coding
#: noise move few pixels to another bin, fine enough that two shots of similar brightness differ.
HISTOGRAM_LEVELS = 8


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Joint RGB histogram of a (small) frame, normalised to sum 1: the frame's colours, wherever they are.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB (pass 1 uses a thumbnail about 96 pixels across: the histogram needs no detail).

    Returns:
        A float64 array of ``HISTOGRAM_LEVELS ** 3`` bin fractions (dimensionless, summing to 1).

    Raises:
        ValueError: not a non-empty ``(H, W, 3)`` uint8 array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0 or rgb.dtype != np.uint8:
        raise ValueError(f"colour_histogram: expected a non-empty (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
    shift = 8 - int(np.log2(HISTOGRAM_LEVELS))
    q = (rgb >> shift).astype(np.intp)
    index = (q[..., 0] * HISTOGRAM_LEVELS + q[..., 1]) * HISTOGRAM_LEVELS + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=HISTOGRAM_LEVELS ** 3)
    return counts / counts.sum()


def colour_change(a: np.ndarray, b: np.ndarray) -> float:
    """How much the colours of two frames differ: the share of pixels whose colour must change to turn histogram
    ``a`` into ``b`` (total variation distance, ``sum |a - b| / 2``), in [0, 1]; 0 for the same colours.

    Fast motion keeps most of a picture's colours, a cut to another shot changes many (the values measured on
    real and synthetic footage: docs/detection.md, "Scene cuts").

    Raises:
        ValueError: the histograms differ in shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"colour_change: histograms differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(a - b).sum()) / 2


def difference_scores(frames: Sequence[np.ndarray]) -> list[float]:
    """Scores of consecutive frames: ``scores[i] = frame_difference(frames[i], frames[i + 1])``.

    ``n`` frames give ``n - 1`` scores (grey levels). Convenience for tests and small inputs; the pipeline computes
    the scores while streaming, one frame pair at a time.
    """
    return [frame_difference(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]


@dataclass(frozen=True)
class DetectionSettings:
    """Settings of :func:`detect`; every default comes from :data:`retime.defaults.DEFAULTS`.

    Attributes:
        threshold: ceiling, in grey levels: no score above it is a duplicate (the T of the module docstring, per
            pixel).
        floor: grey levels; a score at or below it is a duplicate whatever its neighbours (identical frames up
            to coding noise).
        dip_ratio: a score between ``floor`` and ``threshold`` is a duplicate when it is at most this fraction of
            the local motion level and of the scores just outside its run (dimensionless, in (0, 1)).
        deep_ratio: a score at most this fraction of the local motion level may be a duplicate even above
            ``threshold``: fast encoders leave duplicates of fast motion a grey level or two apart, still a deep
            dip (dimensionless, in [0, dip_ratio]; 0 makes ``threshold`` a hard ceiling).
        window: scores on each side (nearest first, duplicates and cuts skipped) whose median gives the local
            motion level (frames).
        min_motion: grey levels; where the local motion level is lower, only ``floor`` applies (a nearly static
            shot has no dips worth repairing, and an encoder skipping an update makes one).
        max_run: a run of more than this many consecutive duplicates is an intentional freeze and is kept
            (frames).
        scene_cut: a score above this is a scene cut (grey levels).
        cut_ratio: a score at least ``cut_min`` and at least this many times the expected local motion is also a
            scene cut (dimensionless).
        cut_min: grey levels; smallest score that the relative cut rule may call a cut.
        cut_colour: a cut candidate is a cut only if its :func:`colour_change` is at least this (dimensionless, in
            [0, 1]; 0 calls every candidate a cut). Applies only where the caller gives colour changes.
        colour_cut: a score of at least ``cut_min`` whose colour change is at least this is a cut even when the
            grey-level rules see no spike: two shots of the same brightness and different colours (dimensionless,
            in [cut_colour, 1]; 1 turns the rule off but for complete changes).

    Raises:
        UsageError: a value is out of range (the message names the setting and the value).
    """

    threshold: float = DEFAULTS.threshold
    floor: float = DEFAULTS.duplicate_floor
    dip_ratio: float = DEFAULTS.dip_ratio
    deep_ratio: float = DEFAULTS.deep_ratio
    window: int = DEFAULTS.motion_window
    min_motion: float = DEFAULTS.min_motion
    max_run: int = DEFAULTS.max_run
    scene_cut: float = DEFAULTS.scene_cut
    cut_ratio: float = DEFAULTS.cut_ratio
    cut_min: float = DEFAULTS.cut_min
    cut_colour: float = DEFAULTS.cut_colour
    colour_cut: float = DEFAULTS.colour_cut

    def __post_init__(self) -> None:
        checks = [
            ("threshold", self.threshold, 0 <= self.threshold <= 255, "a grey level in [0, 255]"),
            ("floor", self.floor, 0 <= self.floor <= self.threshold, "a grey level in [0, threshold]"),
            ("dip_ratio", self.dip_ratio, 0 < self.dip_ratio < 1, "a ratio in (0, 1)"),
            ("deep_ratio", self.deep_ratio, 0 <= self.deep_ratio <= self.dip_ratio, "a ratio in [0, dip_ratio]"),
            ("window", self.window, isinstance(self.window, int) and self.window >= 1, "an integer >= 1 (frames)"),
            ("min_motion", self.min_motion, 0 <= self.min_motion <= 255, "a grey level in [0, 255]"),
            ("max_run", self.max_run, isinstance(self.max_run, int) and self.max_run >= 1,
             "an integer >= 1 (frames)"),
            ("scene_cut", self.scene_cut, self.threshold < self.scene_cut <= 255,
             "a grey level above threshold and at most 255"),
            ("cut_ratio", self.cut_ratio, self.cut_ratio > 1, "a ratio > 1"),
            ("cut_min", self.cut_min, self.threshold < self.cut_min <= self.scene_cut,
             "a grey level in (threshold, scene_cut]"),
            ("cut_colour", self.cut_colour, 0 <= self.cut_colour <= 1, "a colour change in [0, 1]"),
            ("colour_cut", self.colour_cut, self.cut_colour <= self.colour_cut <= 1,
             "a colour change in [cut_colour, 1]"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise UsageError(f"detection setting {name}={value!r} is out of range: expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DuplicateRun:
    """``length`` consecutive duplicate frames ``start .. start + length - 1``, each repeating the one before.

    Attributes:
        start: index of the first duplicate frame (>= 1; frame 0 has nothing before it).
        length: k, the number of duplicates in the run (frames).
        scores: the k scores that made them duplicates, ``scores[m]`` = difference of frame ``start + m`` against
            frame ``start + m - 1`` (grey levels).
        motion: the local motion level each score was compared with (grey levels; ``None`` where too few
            neighbours).
        reasons: one human-readable line per duplicate saying which rule flagged it.
        freeze: ``length > max_run``: an intentional freeze, kept as it is.
    """

    start: int
    length: int
    scores: tuple[float, ...]
    motion: tuple[float | None, ...]
    reasons: tuple[str, ...]
    freeze: bool

    @property
    def left(self) -> int:
        """The distinct frame before the run (the frame the duplicates repeat)."""
        return self.start - 1

    @property
    def right(self) -> int:
        """The first distinct frame after the run; equals the frame count when the run touches the last frame."""
        return self.start + self.length

    @property
    def frames(self) -> range:
        """Indices of the duplicate frames."""
        return range(self.start, self.start + self.length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "length": self.length,
            "left": self.left,
            "right": self.right,
            "scores": [round(s, 4) for s in self.scores],
            "motion": [None if m is None else round(m, 4) for m in self.motion],
            "reasons": list(self.reasons),
            "freeze": self.freeze,
        }


@dataclass(frozen=True)
class SceneCut:
    """A scene cut (or a rejected candidate) between frames ``index - 1`` and ``index``; ``score`` is their
    difference (grey levels), ``colour`` their :func:`colour_change` (``None`` when not measured)."""

    index: int
    score: float
    reason: str
    colour: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "score": round(self.score, 4), "reason": self.reason}
        if self.colour is not None:
            out["colour"] = round(self.colour, 4)
        return out


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found in a video of ``n_frames`` frames (frame indices count from 0, in decode order).

    Attributes:
        n_frames: number of frames analysed (``len(scores) + 1``).
        duplicates: indices of the frames that repeat the frame before them, ascending (freezes included).
        runs: the duplicates grouped into maximal runs of consecutive frames, ascending.
        cuts: index j means a scene cut between frame j - 1 and frame j, ascending.
        cut_details: the same cuts with their scores and the rule that found each.
        settings: the settings used.
        scores: the input scores (grey levels), kept for reports.
        fast_motion: cut candidates whose colours barely changed: fast motion, not cuts (interpolated).
    """

    n_frames: int
    duplicates: list[int]
    runs: list[DuplicateRun]
    cuts: list[int]
    cut_details: list[SceneCut]
    settings: DetectionSettings
    scores: tuple[float, ...] = field(repr=False)
    fast_motion: list[SceneCut] = field(default_factory=list)

    @property
    def freezes(self) -> list[DuplicateRun]:
        """Runs longer than ``settings.max_run``: intentional freezes, kept as they are."""
        return [run for run in self.runs if run.freeze]

    def to_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        """Plain JSON-serializable data (what ``retime detect --json`` prints)."""
        out: dict[str, Any] = {
            "n_frames": self.n_frames,
            "duplicates": list(self.duplicates),
            "runs": [run.to_dict() for run in self.runs],
            "freezes": [run.start for run in self.freezes],
            "cuts": list(self.cuts),
            "cut_details": [cut.to_dict() for cut in self.cut_details],
            "fast_motion": [cut.to_dict() for cut in self.fast_motion],
            "settings": self.settings.to_dict(),
        }
        if include_scores:
            out["scores"] = [round(s, 4) for s in self.scores]
        return out


def local_motion(scores: np.ndarray, excluded: np.ndarray, window: int, quantile: float = 0.5) -> np.ndarray:
    """Robust local motion level around each score (grey levels; NaN where it cannot be estimated).

    The neighbours of score ``i`` are the ``window`` nearest scores before it and the ``window`` nearest after it
    that are not ``excluded`` (the caller excludes duplicates and scene cuts: neither is motion), no further than
    ``MOTION_REACH * window`` frames away; skipping excluded scores lets a frozen stretch see the motion beyond its
    frozen frames. Each side gives its ``quantile`` (the median by default) when it has at least
    :data:`MIN_MOTION_SUPPORT` neighbours, and ``motion[i]`` is the larger of the two: at the edge of a freeze one
    side is all frozen frames, which are low like a duplicate and would drag a pooled median down. Where neither
    side has enough neighbours, the quantile of all of them (if at least :data:`MIN_MOTION_SUPPORT`), else NaN.

    Args:
        scores: 1-D float array of frame-difference scores (grey levels).
        excluded: 1-D bool array of the same length.
        window: neighbours on each side (scores).
        quantile: in (0, 1); 0.5 is the median.
    """
    n = scores.shape[0]
    usable = np.flatnonzero(~excluded)
    here = np.arange(n)
    steps = np.arange(1, window + 1)
    before = np.searchsorted(usable, here, side="left")[:, None] - steps  # positions in `usable`, nearest first
    after = np.searchsorted(usable, here, side="right")[:, None] + steps - 1

    def gather(slots: np.ndarray) -> np.ndarray:
        valid = (slots >= 0) & (slots < usable.size)
        if not usable.size:
            return np.full(slots.shape, np.nan)
        frames = usable[np.clip(slots, 0, usable.size - 1)]
        valid &= np.abs(frames - here[:, None]) <= MOTION_REACH * window
        return np.where(valid, scores[frames], np.nan)

    left, right = gather(before), gather(after)
    motion = np.fmax(_row_quantile(left, quantile), _row_quantile(right, quantile))  # fmax ignores one NaN
    pooled = np.isnan(motion)
    if pooled.any():
        motion[pooled] = _row_quantile(np.concatenate([left[pooled], right[pooled]], axis=1), quantile)
    return motion


def _row_quantile(values: np.ndarray, quantile: float) -> np.ndarray:
    """Quantile of the non-NaN values of each row; NaN for rows with fewer than MIN_MOTION_SUPPORT of them.

    (np.nanquantile along an axis loops in Python per row.) Sorting puts the NaNs last, so the quantile of the
    ``support`` valid values of a row is a linear interpolation at position ``quantile * (support - 1)``.
    """
    values = np.sort(values, axis=1)
    support = np.count_nonzero(~np.isnan(values), axis=1)
    last = np.maximum(support - 1, 0)
    position = quantile * last
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, last)
    frac = position - low
    rows = np.arange(values.shape[0])
    with np.errstate(invalid="ignore"):
        out = values[rows, low] * (1 - frac) + values[rows, high] * frac if values.shape[1] else np.full(
            values.shape[0], np.nan)
    out[support < MIN_MOTION_SUPPORT] = np.nan
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array, as (first, last) index pairs, inclusive."""
    edges = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def find_duplicates(scores: np.ndarray, settings: DetectionSettings,
                    colours: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The duplicate rule of the module docstring, with the local motion estimated robustly.

    1. Grow: start from the scores at or below ``floor``; then, round after round, estimate the local motion
       without the duplicates found so far (and without scene cuts) and add every score that is a dip against it.
       A duplicate's own low score must not pull down the motion level of its neighbours: inside a compressed
       freeze the frozen frames' scores would otherwise be each other's "motion", and the freeze would fall apart
       into short runs that get interpolated. The set only grows: this ends at a fixed point (or after
       :data:`MAX_ROUNDS` rounds).
    2. Prune: a run of duplicates is a sharp dip, so each of its scores above ``floor`` must also be at most
       ``dip_ratio`` times the scores just outside the run (the one before it and the one after it, cuts left
       out). Real motion that slows down for a frame or two, next to a true duplicate or not, fails this and is
       dropped; repeated until nothing changes.

    Args:
        scores: 1-D float array (grey levels).
        colours: the colour change of each pair (:func:`colour_change`), or ``None``: a score above ``scene_cut``
            counts as a cut (left out of the motion) only when its colours changed by ``cut_colour`` or more.

    Returns:
        ``(is_duplicate, motion)``: ``is_duplicate[i]`` says frame ``i + 1`` is a duplicate; ``motion[i]`` is the
        local motion level it was last compared with (grey levels; NaN where unknown).
    """
    cut = scores > settings.scene_cut
    if colours is not None:
        cut &= colours >= settings.cut_colour
    certain = scores <= settings.floor
    dup = certain.copy()
    motion_at = np.full(scores.shape[0], np.nan)
    for _ in range(MAX_ROUNDS):
        motion = local_motion(scores, dup | cut, settings.window)
        motion_at[~dup] = motion[~dup]
        with np.errstate(invalid="ignore"):  # NaN motion: no dip
            ceiling = np.fmax(settings.threshold, settings.deep_ratio * motion)
            new = (~dup & (scores <= ceiling) & (motion >= settings.min_motion)
                   & (scores <= settings.dip_ratio * motion))
        if not new.any():
            break
        dup |= new
    changed = True
    while changed:
        changed = False
        for first, last in _runs(dup):
            sides = [scores[j] for j in (first - 1, last + 1) if 0 <= j < scores.size and not cut[j]]
            if not sides:
                continue
            limit = settings.dip_ratio * min(sides)
            for i in range(first, last + 1):
                if not certain[i] and scores[i] > limit:
                    dup[i] = False
                    changed = True
    return dup, motion_at



def detect(scores: Sequence[float], settings: DetectionSettings | None = None, *,
           colours: Sequence[float] | None = None, spans: Sequence[int] | None = None) -> Detection:
    """Find duplicate frames, their runs, freezes and scene cuts from consecutive-frame scores.

    Args:
        scores: ``scores[i] = frame_difference(frame i, frame i + 1)`` for ``i = 0 .. n - 2`` (grey levels), so
            ``n`` frames give ``n - 1`` scores. An empty sequence means a single frame.
        settings: detection settings; ``DetectionSettings()`` (the defaults) when omitted.
        spans: ``spans[i]`` = frame intervals between frames i and i + 1 (1, or k + 1 across a timestamp gap of k
            missing frames), or ``None`` (all 1). The motion expected across a gap is that many times the local
            motion, and a colour change across missing frames says nothing of a new shot.
        colours: ``colours[i] = colour_change`` of the histograms of frames i and i + 1 (in [0, 1]), or ``None``.
            Given, a cut candidate is a cut only if ``colours[i] >= settings.cut_colour`` (else fast motion,
            ``Detection.fast_motion``); without them every candidate is a cut (never blended, possibly copied
            where the model would have done better).

    Returns:
        A :class:`Detection`. Frame ``i + 1`` is a duplicate when ``scores[i]`` passes the rule in the module
        docstring (with the neighbourhood test of docs/detection.md).

    Raises:
        ValueError: a score is negative, NaN or infinite; ``colours`` is not one value in [0, 1] per score.
    """
    settings = settings or DetectionSettings()
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size and (not np.all(np.isfinite(s)) or s.min() < 0):
        bad = int(np.flatnonzero(~np.isfinite(s) | (s < 0))[0])
        raise ValueError(f"detect: scores must be finite and >= 0 grey levels; scores[{bad}] = {s[bad]!r}")
    c = None
    if colours is not None:
        c = np.asarray(colours, dtype=np.float64).reshape(-1)
        if c.shape != s.shape:
            raise ValueError(f"detect: {c.size} colour changes for {s.size} scores; expected one per score")
        if c.size and not (np.all(np.isfinite(c)) and c.min() >= 0 and c.max() <= 1):
            bad = int(np.flatnonzero(~(np.isfinite(c) & (c >= 0) & (c <= 1)))[0])
            raise ValueError(f"detect: colour changes must be in [0, 1]; colours[{bad}] = {c[bad]!r}")
    n_frames = s.size + 1
    is_dup, motion = find_duplicates(s, settings, c)
    reasons = [_reason(float(x), float(m), settings) if d else "" for x, m, d in zip(s, motion, is_dup)]

    runs: list[DuplicateRun] = []
    i = 0
    while i < s.size:
        if not is_dup[i]:
            i += 1
            continue
        j = i
        while j + 1 < s.size and is_dup[j + 1]:
            j += 1
        k = j - i + 1
        runs.append(DuplicateRun(
            start=i + 1,
            length=k,
            scores=tuple(float(x) for x in s[i:j + 1]),
            motion=tuple(None if np.isnan(x) else float(x) for x in motion[i:j + 1]),
            reasons=tuple(reasons[i:j + 1]),
            freeze=k > settings.max_run,
        ))
        i = j + 1

    # --- scene cuts ----------------------------------------------------------------------------------------
    # Right after a run of k duplicates the picture has moved for k + 1 frame intervals, so the expected score
    # there is (k + 1) x the local motion; without this, every repaired drop in fast motion would look like a cut.
    run_ending_at = {run.right - 1: run.length for run in runs}  # score index just after the run -> k
    cut_details: list[SceneCut] = []
    fast_motion: list[SceneCut] = []
    for i, score in enumerate(s):
        if is_dup[i] or score < settings.cut_min:  # cut_min <= scene_cut: no candidate is lost here
            continue
        span = 1 if spans is None else int(spans[i])
        # NaN where too few neighbours: no spike rule
        expected = motion[i] * (run_ending_at.get(i, 0) + span)
        if score > settings.scene_cut:
            reason = f"score {score:.2f} > scene_cut {settings.scene_cut:g}"
        elif score >= settings.cut_ratio * expected:
            reason = (f"score {score:.2f} >= cut_ratio {settings.cut_ratio:g} x expected motion {expected:.2f} "
                      f"and >= cut_min {settings.cut_min:g}")
        elif c is not None and span == 1 and c[i] >= settings.colour_cut:  # no spike, but other colours: a new shot
            cut_details.append(SceneCut(i + 1, float(score), f"colour change {c[i]:.3f} >= colour_cut "
                                        f"{settings.colour_cut:g} and score {score:.2f} >= cut_min "
                                        f"{settings.cut_min:g}", float(c[i])))
            continue
        else:
            continue
        if c is None:
            cut_details.append(SceneCut(i + 1, float(score), reason))
        elif c[i] >= settings.cut_colour:
            cut_details.append(SceneCut(i + 1, float(score), f"{reason}, colour change {c[i]:.3f} >= cut_colour "
                                                             f"{settings.cut_colour:g}", float(c[i])))
        else:  # a large pixel change with the same colours: the picture moved, the shot did not change
            fast_motion.append(SceneCut(i + 1, float(score), f"{reason}, but colour change {c[i]:.3f} < cut_colour "
                                                             f"{settings.cut_colour:g}: fast motion, not a cut",
                                        float(c[i])))

    return Detection(
        n_frames=n_frames,
        duplicates=[d for run in runs for d in run.frames],
        runs=runs,
        cuts=[cut.index for cut in cut_details],
        cut_details=cut_details,
        settings=settings,
        scores=tuple(float(x) for x in s),
        fast_motion=fast_motion,
    )


def _reason(score: float, motion: float, settings: DetectionSettings) -> str:
    if score <= settings.floor:
        return f"score {score:.3f} <= floor {settings.floor:g} (identical up to coding noise)"
    ceiling = (f"<= threshold {settings.threshold:g}" if score <= settings.threshold
               else f"<= deep_ratio {settings.deep_ratio:g} x local motion (a deep dip)")
    return f"score {score:.3f} <= dip_ratio {settings.dip_ratio:g} x local motion {motion:.3f}, {ceiling}"
