"""The rules (the package docstring states them): the local motion level, duplicates as sharp dips found round
after round, freezes, and scene cuts that must change colour."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from retime.detect._scores import run_positions
from retime.detect._settings import Detection, DetectionSettings, DuplicateRun, SceneCut

#: A side's motion level is only trusted with at least this many neighbour scores (neither duplicates nor cuts);
#: with fewer on both sides together (a clip of a few frames) only the ``floor`` rule applies. Three values are
#: the fewest whose median ignores one outlier.
MIN_MOTION_SUPPORT = 3
#: The neighbours that give the local motion level lie at most this many windows away (see :func:`local_motion`):
#: far enough to see past a freeze of a few seconds, near enough to stay in the same stretch of motion.
MOTION_REACH = 4
#: Least moved share (of the picture's area) the neighbours of a frame must have for its motion vectors to count:
#: a dip in moved area below a few dozen macroblocks' worth says nothing, and content that changes in place (a
#: fade, a lighting change) is coded with zero vectors throughout.
MIN_MOVED_LEVEL = 0.02
#: Rounds of re-estimating the local motion without the duplicates found so far (see :func:`find_duplicates`).
#: Each round eats into a compressed freeze from both ends; the fixed point comes after a few rounds in practice.
MAX_ROUNDS = 50


def local_motion(scores: np.ndarray, excluded: np.ndarray, window: int, quantile: float = 0.5, *,
                 larger: bool = True) -> np.ndarray:
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
        larger: take the larger side's level (the default); ``False`` takes the smaller, for a measure a repeat
            must dip under on both sides.
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
    pick = np.fmax if larger else np.fmin  # both ignore one NaN
    motion = pick(_row_quantile(left, quantile), _row_quantile(right, quantile))
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
                    colours: np.ndarray | None = None, vectors: np.ndarray | None = None,
                    gram: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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

    3. Vectors: where the decoder's motion vectors of a frame are known (``vectors``, from a stream without
       B-frames), they can also make a candidate a duplicate, which coding noise hides from the dip tests in slow
       motion. A score that could be a duplicate (at most ``max(threshold, deep_ratio * motion)``, with
       ``motion >= min_motion``) is one when its frame's moved area is at most ``vector_dip`` times the local
       level of the neighbours' (:func:`local_motion` of the shares, duplicates and cuts left out, the smaller
       side), if that level is at least :data:`MIN_MOVED_LEVEL`: a repeat is predicted from the same place, real
       motion moves blocks like the frames around it. At the fixed point the duplicates the dip took are judged
       by the vectors again, against the final levels (a frame taken in an early round, beside frozen frames not
       yet left out, saw a level dragged to nothing). The vectors' duplicates are exempt from the sharpness test
       of step 2. The vectors only add duplicates: a frame the scores take stays taken (several references, or a
       motion search that chases coding noise, can give a repeat vectors).
    4. Position: where the frames' inner products are given (``gram``), a duplicate above ``floor`` in a run of
       at most ``max_run`` is dropped when it moves more than ``position_cut`` (``vector_position_cut`` for the
       vectors' duplicates: a fast encoder moves repeats further) of the way from the frame before its run to the
       frame after it, beyond where the frame before it in the run sits (:func:`run_positions`; the largest such
       step of a run, one frame at a time, dropped when it is over its own cut): a repeat stays where its
       original was, a real frame that barely moves still moves *along* the motion.
       Steps 2 and 4 repeat until nothing changes.

    Args:
        scores: 1-D float array (grey levels).
        colours: the colour change of each pair (:func:`colour_change`), or ``None``: a score above ``scene_cut``
            counts as a cut (left out of the motion) only when its colours changed by ``cut_colour`` or more.
        vectors: ``vectors[i]`` = moved share of frame ``i + 1``'s inter-coded area in [0, 1]
            (:func:`previous_frame_vectors`; NaN where unknown), or ``None``.
        gram: ``(len(scores) + 1, R + 1)`` int64 inner products of the scored frames (:class:`NeighbourGram`), or
            ``None`` (no position test).

    Returns:
        ``(is_duplicate, motion, moved, step)``: ``is_duplicate[i]`` says frame ``i + 1`` is a duplicate;
        ``motion[i]`` is the local motion level it was last compared with (grey levels; NaN where unknown);
        ``moved[i]``, for a duplicate the vectors took, the neighbours' moved share its own was compared with (NaN
        elsewhere); ``step[i]``, for a duplicate the position test judged, the step it was judged by (NaN
        elsewhere).
    """
    cut = scores > settings.scene_cut
    if colours is not None:
        cut &= colours >= settings.cut_colour
    certain = scores <= settings.floor
    known = np.zeros(scores.shape, bool) if vectors is None else np.isfinite(vectors)
    shares = np.zeros(scores.shape) if vectors is None else np.nan_to_num(vectors)
    dup = certain.copy()
    by_vectors = np.zeros(scores.shape, bool)  # taken on the vectors' word: the sharpness test is for scores
    motion_at = np.full(scores.shape[0], np.nan)
    moved_at = np.full(scores.shape[0], np.nan)
    for _ in range(MAX_ROUNDS):
        motion = local_motion(scores, dup | cut, settings.window)
        motion_at[~dup] = motion[~dup]
        with np.errstate(invalid="ignore"):  # NaN motion: no dip
            ceiling = np.fmax(settings.threshold, settings.deep_ratio * motion)
            dip = scores <= settings.dip_ratio * motion
            still = np.zeros(scores.shape, bool)
            if known.any() and settings.vector_dip > 0:
                # the smaller side: where the motion changes pace, a real frame keeps up with one side of it
                moved = local_motion(shares, dup | cut | ~known, settings.window, larger=False)
                # too few neighbours with vectors, or too little moved area for a dip in it to mean anything
                # (a fade or a lighting change is coded with zero vectors): the scores decide
                judged = known & (moved >= MIN_MOVED_LEVEL)
                still = judged & (shares <= settings.vector_dip * moved)
                moved_at[~dup] = np.where(judged, moved, np.nan)[~dup]
            fits = (scores <= ceiling) & (motion >= settings.min_motion)
            new = ~dup & fits & (dip | still)
        if not new.any():
            break
        dup |= new
        by_vectors |= new & still
    # the last round's levels are the final ones: judged against them, as the scores are, a frame the dip took in an
    # early round (beside frozen frames not yet left out of its neighbours' level) can be the vectors' repeat too
    vouched = dup & ~certain & ~by_vectors & fits & still
    if vouched.any():
        moved_at[vouched] = moved[vouched]
        by_vectors |= vouched
    judged_by_scores = ~certain & ~by_vectors  # the sharpness test is for the scores' dips
    cut_of = np.where(by_vectors, max(settings.position_cut, settings.vector_position_cut), settings.position_cut)
    step_at = np.full(scores.shape[0], np.nan)
    changed = True
    while changed:
        changed = False
        for first, last in _runs(dup):
            sides = [scores[j] for j in (first - 1, last + 1) if 0 <= j < scores.size and not cut[j]]
            if not sides:
                continue
            limit = settings.dip_ratio * min(sides)
            for i in range(first, last + 1):
                if judged_by_scores[i] and scores[i] > limit:
                    dup[i] = False
                    changed = True
        step_at[:] = np.nan  # the last pass leaves the steps of the runs as they end
        for first, last in _runs(dup) if gram is not None and settings.position_cut > 0 else ():
            if last - first + 1 > settings.max_run or not _positions_known(gram, first, last):
                continue  # a freeze is kept whole anyway; beyond the gram's reach there is nothing to test
            steps = _position_steps(gram, first, last)
            steps[certain[first:last + 1]] = np.nan  # NaN: not judged, or no direction to judge by
            step_at[first:last + 1] = steps
            m = int(np.argmax(np.nan_to_num(steps, nan=-np.inf)))
            if steps[m] > cut_of[first + m]:  # the frame that moved is the one that steps furthest
                dup[first + m] = False  # one frame at a time: the rest of the run is judged again without it
                changed = True
    return dup, motion_at, np.where(by_vectors, moved_at, np.nan), step_at


def _positions_known(gram: np.ndarray, first: int, last: int) -> bool:
    """Whether the gram reaches from the frame before the run of scores ``first .. last`` (frame ``first``) to the
    frame after it (frame ``last + 2``)."""
    return last + 2 < gram.shape[0] and last - first + 2 < gram.shape[1]


def _position_steps(gram: np.ndarray, first: int, last: int) -> np.ndarray:
    """How far each frame of the run of scores ``first .. last`` sits beyond the frame before it on the way across
    the run (:func:`run_positions`; the frame before the run sits at 0). The frame that moved is the one that steps
    away: in a run of a barely moving real frame and its repeat, both sit at that frame's position."""
    return np.diff(run_positions(gram, first + 1, last + 1), prepend=0.0)


def detect(scores: Sequence[float], settings: DetectionSettings | None = None, *,
           colours: Sequence[float] | None = None, spans: Sequence[int] | None = None,
           vectors: Sequence[float] | None = None, gram: np.ndarray | None = None) -> Detection:
    """Find duplicate frames, their runs, freezes and scene cuts from consecutive-frame scores.

    Args:
        scores: ``scores[i] = frame_difference(frame i, frame i + 1)`` for ``i = 0 .. n - 2`` (grey levels), so
            ``n`` frames give ``n - 1`` scores. An empty sequence means a single frame.
        settings: detection settings; ``DetectionSettings()`` (the defaults) when omitted.
        spans: ``spans[i]`` = frame intervals between frames i and i + 1 (1, or k + 1 across a timestamp gap of k
            missing frames), or ``None`` (all 1). The motion expected across a gap is that many times the local
            motion, and a colour change across missing frames says nothing of a new shot.
        colours: ``colours[i] = colour_change`` of the histograms of frames i and i + 1 (in [0, 1]; NaN, not
            measured, where ``scores[i] < cut_min``, since no rule reads it there), or ``None``.
            Given, a cut candidate is a cut only if ``colours[i] >= settings.cut_colour`` (else fast motion,
            ``Detection.fast_motion``); without them every candidate is a cut (never blended, possibly copied
            where the model would have done better).
        vectors: ``vectors[i]`` = the share of frame ``i + 1``'s inter-coded area its decoded motion vectors moved
            (:func:`previous_frame_vectors`: streams without B-frames only; NaN where a frame has none), or
            ``None``. Where known they decide between a repeat and slow motion (:func:`find_duplicates`).
        gram: ``(n, R + 1)`` int64, ``gram[t, k]`` = <B_t, B_t+k> of the scored (box-averaged) frames
            (:class:`NeighbourGram`), or ``None``. Given, a duplicate above ``floor`` stays one only if its
            position on the way from the frame before its run to the one after it steps at most ``position_cut``
            (``vector_position_cut`` for a repeat the vectors find) beyond the frame before it
            (:func:`find_duplicates`, step 4).

    Returns:
        A :class:`Detection`. Frame ``i + 1`` is a duplicate when ``scores[i]`` passes the rule in the module
        docstring (with the neighbourhood test of docs/detection.md).

    Raises:
        ValueError: a score is negative, NaN or infinite; ``colours`` is not one value in [0, 1] per score (or NaN
            under ``cut_min``).
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
        # NaN: not measured, allowed where no rule reads it (a score under cut_min)
        wrong = np.isnan(c) & (s >= settings.cut_min) | ~np.isnan(c) & ~((c >= 0) & (c <= 1))
        if wrong.any():
            bad = int(np.flatnonzero(wrong)[0])
            raise ValueError(f"detect: colour changes must be in [0, 1] (NaN only where the score is under "
                             f"cut_min {settings.cut_min:g}); colours[{bad}] = {c[bad]!r}")
    v = None
    if vectors is not None:
        v = np.asarray(vectors, dtype=np.float64).reshape(-1)
        if v.shape != s.shape:
            raise ValueError(f"detect: {v.size} motion-vector shares for {s.size} scores; expected one per score")
        if np.any((v < 0) | (v > 1)):  # NaN compares False: unknown is allowed
            bad = int(np.flatnonzero((v < 0) | (v > 1))[0])
            raise ValueError(f"detect: motion-vector shares must be in [0, 1] or NaN; vectors[{bad}] = {v[bad]!r}")
    n_frames = s.size + 1
    g = None
    if gram is not None:
        g = np.asarray(gram)
        if g.ndim != 2 or g.shape[0] != n_frames or g.shape[1] < 2 or g.dtype != np.int64:
            raise ValueError(f"detect: the gram must be ({n_frames}, R + 1) int64 with R >= 1 for {s.size} scores; "
                             f"got {g.shape} {g.dtype}")
    is_dup, motion, moved, step = find_duplicates(s, settings, c, v, g)
    reasons = [_reason(float(s[i]), float(motion[i]), settings, None if v is None else float(v[i]),
                       float(moved[i]), float(step[i])) if is_dup[i] else "" for i in range(s.size)]

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


def _reason(score: float, motion: float, settings: DetectionSettings, share: float | None = None,
            moved: float = math.nan, step: float = math.nan) -> str:
    """Which rule made a duplicate of this score; ``moved`` is the neighbours' level where the vectors took it,
    ``step`` the position step where the position test judged it."""
    if score <= settings.floor:
        return f"score {score:.3f} <= floor {settings.floor:g} (identical up to coding noise)"

    def position(cut_name: str, cut: float) -> str:
        return "" if math.isnan(step) else \
            f", its position steps {round(step, 3) + 0.0:.3f} along the motion <= {cut_name} {cut:g}"

    if not math.isnan(moved):
        return (f"score {score:.3f} <= {max(settings.threshold, settings.deep_ratio * motion):.3f} and its decoded "
                f"motion vectors moved {share:.3f} of its inter-coded area <= vector_dip {settings.vector_dip:g} x "
                f"the neighbours' {moved:.3f}{position('vector_position_cut', settings.vector_position_cut)}")
    ceiling = (f"<= threshold {settings.threshold:g}" if score <= settings.threshold
               else f"<= deep_ratio {settings.deep_ratio:g} x local motion (a deep dip)")
    return (f"score {score:.3f} <= dip_ratio {settings.dip_ratio:g} x local motion {motion:.3f}, {ceiling}"
            f"{position('position_cut', settings.position_cut)}")
