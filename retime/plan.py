"""Plans: plain, serializable data that says what every output frame is, between analysis and rendering.

Each output frame is either a :class:`Copy` of one source frame or a :class:`Synth` (synthesized) frame between two
source frames at a time ``t`` in (0, 1). A plan is built from the analysis (pass 1: grey frames, scores,
:class:`retime.detect.Detection`) and rendered by streaming full frames through it (pass 2). Plans need no numpy,
no torch and no video files, so they are tested on their own and printed by ``--dry-run`` / ``detect --json``.

Source frame indices count from 0 in decode (presentation) order. Times are ``Fraction`` seconds; PTS are integers
in a stated time base; never a float frame rate.

Streaming: both plans list their ops in output order and say, for output ``j``, which source frames it needs
(:meth:`~FixDropsPlan.needs`) and the lowest source index still needed from ``j`` on (:meth:`~FixDropsPlan.keep_from`),
so a renderer holds a window of at most ``max_lookahead`` source frames and releases the rest.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # plan.py needs only the shape of a Detection and a Gap, not numpy
    from retime.detect import Detection
    from retime.timing import Cadence, Gap

# --- the two operations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """The output frame is source frame ``source``, unchanged."""

    source: int

    def needs(self) -> tuple[int, ...]:
        return (self.source,)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "copy", "source": self.source}


@dataclass(frozen=True)
class Synth:
    """The output frame is synthesized between source frames ``left`` < ``right`` at time ``t`` in (0, 1).

    ``t`` is the fraction of the way from ``left`` to ``right`` (0 would be ``left``, 1 ``right``):
    ``t = (t3 - t1) / (t2 - t1)`` for frame times ``t1 < t3 < t2``.

    Raises:
        ValueError: ``left >= right`` or ``t`` outside (0, 1).
    """

    left: int
    right: int
    t: float

    def __post_init__(self) -> None:
        if not 0 <= self.left < self.right:
            raise ValueError(f"Synth: need 0 <= left < right, got left={self.left}, right={self.right}")
        if not 0.0 < self.t < 1.0:
            raise ValueError(f"Synth: t must be in (0, 1), got {self.t!r}")

    def needs(self) -> tuple[int, ...]:
        return (self.left, self.right)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "synth", "left": self.left, "right": self.right, "t": self.t}


Op = Union[Copy, Synth]


def op_from_dict(data: dict[str, Any]) -> Op:
    """Inverse of ``Copy.to_dict`` / ``Synth.to_dict``. Raises ValueError on an unknown ``op``."""
    if data["op"] == "copy":
        return Copy(int(data["source"]))
    if data["op"] == "synth":
        return Synth(int(data["left"]), int(data["right"]), float(data["t"]))
    raise ValueError(f"unknown plan op {data['op']!r}; expected 'copy' or 'synth'")


class _Streaming:
    """Window bookkeeping shared by both plans; subclasses provide ``frames`` (a tuple of ops in output order)."""

    frames: tuple[Op, ...]

    def __len__(self) -> int:
        return len(self.frames)

    def needs(self, j: int) -> tuple[int, ...]:
        """Source frame indices that output frame ``j`` needs (one for a copy, two for a synthesized frame)."""
        return self.frames[j].needs()

    def keep_from(self, j: int) -> int:
        """The lowest source index that output frames ``j, j + 1, ...`` still need; the renderer may release
        every source frame below it once output ``j - 1`` is written. Past the end, the source frame count."""
        return self._keep_from()[j] if j < len(self.frames) else self._n_source()

    @property
    def max_lookahead(self) -> int:
        """The most source frames a streaming renderer must hold at once (a window, first to last inclusive):
        ``max_j(max(needs(j)) - keep_from(j) + 1)``. 1 when every output is a copy; ``k + 2`` for a repaired
        run of k duplicates (its left frame, the k duplicates it decodes past, its right frame); 2 for upsampling."""
        keep = self._keep_from()
        return max((max(op.needs()) - keep[j] + 1 for j, op in enumerate(self.frames)), default=0)

    @property
    def synthesized(self) -> int:
        """Number of output frames that are synthesized."""
        return sum(isinstance(op, Synth) for op in self.frames)

    def _keep_from(self) -> list[int]:
        cache = self.__dict__.get("_keep_cache")
        if cache is None:
            cache = [0] * len(self.frames)
            low = self._n_source()
            for j in range(len(self.frames) - 1, -1, -1):
                low = min(low, min(self.frames[j].needs()))
                cache[j] = low
            object.__setattr__(self, "_keep_cache", cache)  # frozen dataclass: a private memo is fine
        return cache

    def _n_source(self) -> int:
        raise NotImplementedError


# --- fix-drops ------------------------------------------------------------------------------------------------

#: Actions for a run of duplicates or a timestamp gap, as reports print them.
INTERPOLATE = "interpolate"
KEEP_FREEZE = "keep-freeze"
KEEP_CUT = "keep-cut"
KEEP_EDGE = "keep-edge"
KEEP_HOLD = "keep-hold"


@dataclass(frozen=True)
class RunAction:
    """What the plan does with one run of ``length`` duplicates ``start .. start + length - 1``.

    Attributes:
        left, right: the distinct frames around the run (``right`` equals the frame count at the end).
        action: ``"interpolate"`` (replaced by frames synthesized between ``left`` and ``right``),
            ``"keep-freeze"`` (longer than ``max_run``: an intentional pause), ``"keep-cut"`` (a scene cut lies
            between ``left`` and ``right``: nothing is blended across it, the duplicates stay copies of ``left``,
            the nearer frame of the same shot) or ``"keep-edge"`` (the run reaches the last frame: no right frame).
        detail: one line saying why.
    """

    start: int
    length: int
    left: int
    right: int
    action: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "length": self.length, "left": self.left, "right": self.right,
                "action": self.action, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunAction:
        return cls(int(data["start"]), int(data["length"]), int(data["left"]), int(data["right"]),
                   str(data["action"]), str(data["detail"]))


@dataclass(frozen=True)
class GapAction:
    """What the plan does with a timestamp gap of ``missing`` frame intervals before source frame ``index``.

    Attributes:
        index: the source frame after the gap (B); A is ``index - 1``.
        missing: k, the frames missing (the output gets k frames there).
        action: ``"interpolate"`` (k frames synthesized between the distinct frames around the gap),
            ``"keep-hold"`` (more than ``max_run`` frames to make: A is held, k copies), ``"keep-cut"`` (a scene
            cut lies across it: A is held, nothing blended across the cut).
        detail: one line saying why.
    """

    index: int
    missing: int
    action: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.index, "missing": self.missing, "action": self.action, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GapAction:
        return cls(int(data["frame"]), int(data["missing"]), str(data["action"]), str(data["detail"]))


@dataclass(frozen=True)
class FixDropsPlan(_Streaming):
    """Plan for ``retime fix-drops``.

    Without timestamp gaps, exactly ``n_frames`` output frames, output frame ``i`` at source frame ``i``'s PTS, so
    the frame count and the duration are unchanged. With gaps, each gap of k missing
    intervals gets k output frames, at ``positions`` between the PTS of the frames around it (a CFR output).

    Attributes:
        n_frames: source frame count.
        frames: one op per output frame: ``Copy(i)`` or, for a repaired duplicate or a filled gap,
            ``Synth(left, right, t)``.
        runs: one :class:`RunAction` per detected run of duplicates, ascending.
        gaps: one :class:`GapAction` per timestamp gap, ascending.
        positions: output frame ``j``'s place on the source timeline, in source frames (a ``Fraction``): ``a`` is
            source frame a's own PTS, ``a + i / (k + 1)`` the i-th of k frames filling the timestamp gap after frame
            a, at that fraction of the way from a's PTS to frame a + 1's; ``None`` when output ``j`` is at source
            frame ``j`` (no gap, or a cadence re-timed at the source's PTS).
        out_rate: decimation: a CFR output at this rate, output ``j`` at ``j / out_rate`` after the first frame;
            ``None``: output times come from the source timeline.
        mode: ``"fill"`` (repeats and gaps repaired in place), ``"retime"`` or ``"decimate"`` (a cadence, see
            :func:`plan_cadence`).
    """

    n_frames: int
    frames: tuple[Op, ...]
    runs: tuple[RunAction, ...]
    gaps: tuple[GapAction, ...] = ()
    positions: tuple[Fraction, ...] | None = None
    out_rate: Fraction | None = None
    mode: str = "fill"

    def __post_init__(self) -> None:
        if self.positions is not None and len(self.positions) != len(self.frames):
            raise ValueError(f"FixDropsPlan: {len(self.positions)} positions for {len(self.frames)} frames")

    def position(self, j: int) -> Fraction:
        """Output frame ``j``'s place on the source timeline (source frames; see ``positions``)."""
        return self.positions[j] if self.positions is not None else Fraction(j)

    def _n_source(self) -> int:
        return self.n_frames

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "fix-drops",
            "mode": self.mode,
            "n_frames": self.n_frames,
            "frames_out": len(self.frames),
            "synthesized": self.synthesized,
            "max_lookahead": self.max_lookahead,
            "out_rate": None if self.out_rate is None else str(self.out_rate),
            "runs": [run.to_dict() for run in self.runs],
            "gaps": [gap.to_dict() for gap in self.gaps],
            "frames": [op.to_dict() for op in self.frames],
            "positions": None if self.positions is None else [str(p) for p in self.positions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixDropsPlan:
        """Inverse of :meth:`to_dict` (derived fields are recomputed)."""
        positions = data.get("positions")
        rate = data.get("out_rate")
        return cls(int(data["n_frames"]), tuple(op_from_dict(d) for d in data["frames"]),
                   tuple(RunAction.from_dict(d) for d in data["runs"]),
                   tuple(GapAction.from_dict(d) for d in data.get("gaps", ())),
                   None if positions is None else tuple(Fraction(p) for p in positions),
                   None if rate is None else Fraction(rate), str(data.get("mode", "fill")))


def plan_fix_drops(n_frames: int, detection: Detection, gaps: Sequence[Gap] = ()) -> FixDropsPlan:
    """Plan the repair of duplicated (dropped) frames (docs/detection.md) and of timestamp gaps (docs/timing.md).

    Every source frame is an output frame, ``Copy(i)``, except the duplicates of a repairable run, and each gap of
    k missing intervals before source frame B adds k output frames at positions ``B - 1 + i / (k + 1)``. Between
    two consecutive distinct source frames A and B (B the first non-duplicate after A), the K output frames in
    between — the run's duplicates and the frames of any gap there — become ``Synth(A, B, m / (K + 1))`` for
    m = 1 .. K: on a CFR output they are evenly spaced in time (for example a, b, c, d with b repeating
    a gives a, x, c, d with x between a and c at t = 1/2). They are kept instead, checked in this order, when
    K > ``detection.settings.max_run`` (a freeze; a gap is held: each added frame copies the source frame before
    it), when nothing distinct follows (the run reaches the last frame) or when a scene cut lies between A and B.

    Args:
        n_frames: number of source frames (>= 1).
        detection: the result of :func:`retime.detect.detect` on this video's scores.
        gaps: timestamp gaps (:attr:`retime.timing.Timing.gaps`: ``index`` and ``missing``), ascending.

    Raises:
        ValueError: ``n_frames`` is below 1 or does not match ``detection.n_frames``, or a gap is out of range.
    """
    if n_frames < 1:
        raise ValueError(f"plan_fix_drops: n_frames must be >= 1, got {n_frames}")
    if detection.n_frames != n_frames:
        raise ValueError(f"plan_fix_drops: n_frames={n_frames} but the detection covers {detection.n_frames} frames")
    missing_before = {}
    for gap in gaps:
        if not 1 <= gap.index < n_frames or gap.missing < 1:
            raise ValueError(f"plan_fix_drops: gap before frame {gap.index} of {gap.missing} frame(s) is out of "
                             f"range for {n_frames} frames")
        missing_before[gap.index] = gap.missing
    max_run = detection.settings.max_run
    cuts = sorted(detection.cuts)
    dups = set(detection.duplicates)
    # the output timeline: (position, source frame or None for a gap's frame)
    entries: list[tuple[Fraction, int | None]] = []
    for i in range(n_frames):
        k = missing_before.get(i, 0)
        entries += [(i - 1 + Fraction(m, k + 1), None) for m in range(1, k + 1)]
        entries.append((Fraction(i), i))
    frames: list[Op] = [Copy(i if i is not None else int(p)) for p, i in entries]
    run_at = {run.start: run for run in detection.runs}
    run_actions: list[RunAction] = []
    gap_actions: list[GapAction] = []
    anchors = [j for j, (_, i) in enumerate(entries) if i is not None and i not in dups]
    for pos, ja in enumerate(anchors):
        jb = anchors[pos + 1] if pos + 1 < len(anchors) else len(entries)
        inner = range(ja + 1, jb)
        if not inner:
            continue
        a = entries[ja][1]
        b = entries[jb][1] if jb < len(entries) else n_frames
        count = len(inner)
        run = run_at.get(a + 1) if a + 1 < b else None
        stretch_gaps = [(i, missing_before[i]) for i in range(a + 1, b + 1) if i in missing_before and i < n_frames]
        with_gaps = f" (with {sum(k for _, k in stretch_gaps)} frame(s) of timestamp gaps)" if stretch_gaps else ""
        # the first cut after frame A, if any: a cut at c separates frames c - 1 and c
        c = bisect.bisect_right(cuts, a)
        cut = cuts[c] if c < len(cuts) and cuts[c] <= b else None
        if count > max_run:
            run_action = (KEEP_FREEZE, f"{run.length if run else 0} duplicates{with_gaps} > max_run {max_run}: an "
                                       f"intentional freeze, kept")
            gap_action = (KEEP_HOLD, f"{count} frame(s) to make > max_run {max_run}: frame {a} held, as a freeze")
        elif b >= n_frames:
            run_action = (KEEP_EDGE, "the run reaches the last frame: no frame after it to interpolate towards")
            gap_action = run_action
        elif cut is not None:
            run_action = (KEEP_CUT, f"scene cut between frames {cut - 1} and {cut}: not blended across it; "
                                    f"the duplicates stay copies of frame {a}, the same shot")
            gap_action = (KEEP_CUT, f"scene cut between frames {cut - 1} and {cut}: not blended across it; "
                                    f"frame {a} held")
        else:
            run_action = (INTERPOLATE, f"{count} frame(s) synthesized between frames {a} and {b}{with_gaps}")
            gap_action = run_action
            for m, j in enumerate(inner, start=1):
                frames[j] = Synth(a, b, m / (count + 1))
        if run is not None:
            run_actions.append(RunAction(run.start, run.length, a, b, *run_action))
        gap_actions += [GapAction(i, k, *gap_action) for i, k in stretch_gaps]
    positions = tuple(p for p, _ in entries) if missing_before else None
    return FixDropsPlan(n_frames, tuple(frames), tuple(run_actions), tuple(gap_actions), positions)


# --- cadences -------------------------------------------------------------------------------------------------

#: What ``--cadence`` may say; ``fill`` is :func:`plan_fix_drops`'s in-place repair.
CADENCE_MODES = ("fill", "retime", "decimate")
#: Run actions under a cadence mode.
RETIME = "retime"
DROP = "drop"
KEEP_OFF_CADENCE = "keep-off-cadence"


def plan_cadence(n_frames: int, detection: Detection, cadence: Cadence, mode: str, rate: Fraction) -> FixDropsPlan:
    """Plan ``fix-drops --cadence retime`` or ``--cadence decimate`` for a video with a repeat cadence.

    The source is the video without the cadence's slots (:attr:`retime.timing.Cadence.slots`, the frames the
    conversion repeated): D = the other frames, in order, at the true source rate ``rate * cadence.ratio``.

    - ``retime``: as many output frames as input frames, output j at input frame j's PTS (same rate and duration)
      showing the source at the even position ``p_j = c + j * ratio`` (in D frames): ``Copy`` where ``p_j`` is a
      whole number, else ``Synth(D[a], D[a + 1], p_j - a)`` with ``a = floor(p_j)``, or a copy of the nearer
      frame where a scene cut lies between them. ``c`` is the mean of (the D frame the input shows at j) minus
      ``j * ratio`` — zero for a conversion that showed the nearest source frame — snapped to a multiple of
      1 / denominator of ``ratio`` so that the copies fall on whole positions.
    - ``decimate``: D copied, re-stamped at the source rate (``out_rate``), nothing synthesized.

    Repeats that are not on the cadence (a real drop, a freeze) stay in D as frames (``keep-off-cadence``).

    Args:
        n_frames: source frame count (>= 2).
        detection: the detection on this video.
        cadence: :func:`retime.timing.find_cadence`'s result for it.
        mode: ``"retime"`` or ``"decimate"``.
        rate: the input's frame rate (frames per second).

    Raises:
        ValueError: an unknown mode, or ``n_frames`` does not match the detection.
    """
    if mode not in ("retime", "decimate"):
        raise ValueError(f"plan_cadence: mode must be 'retime' or 'decimate', got {mode!r}")
    if detection.n_frames != n_frames:
        raise ValueError(f"plan_cadence: n_frames={n_frames} but the detection covers {detection.n_frames} frames")
    slots = set(cadence.slots)
    kept = [i for i in range(n_frames) if i not in slots]
    actions = []
    for run in detection.runs:
        on = all(i in slots for i in run.frames)
        action = (RETIME if mode == "retime" else DROP) if on else KEEP_OFF_CADENCE
        detail = ("a repeat of the cadence: " + ("the motion is re-timed around it" if mode == "retime"
                                                  else "dropped") if on else
                  "not on the cadence (a drop or a freeze of the source): kept as a source frame")
        actions.append(RunAction(run.start, run.length, run.left, run.right, action, detail))
    if mode == "decimate":
        return FixDropsPlan(n_frames, tuple(Copy(i) for i in kept), tuple(actions),
                            out_rate=Fraction(rate) * cadence.ratio, mode=mode)
    ratio = cadence.ratio
    shown, d = [], -1
    for j in range(n_frames):
        if j not in slots:
            d += 1
        shown.append(d)
    offset = sum(Fraction(shown[j]) - j * ratio for j in range(n_frames)) / n_frames
    offset = Fraction(round(offset * ratio.denominator), ratio.denominator)
    cut_set = set(detection.cuts)
    frames: list[Op] = []
    for j in range(n_frames):
        p = min(max(offset + j * ratio, Fraction(0)), Fraction(len(kept) - 1))
        a = p.numerator // p.denominator
        if p == a:
            frames.append(Copy(kept[a]))
            continue
        left, right, t = kept[a], kept[a + 1], p - a
        if any(c in cut_set for c in range(left + 1, right + 1)):
            frames.append(Copy(left if t <= Fraction(1, 2) else right))
        else:
            frames.append(Synth(left, right, float(t)))
    return FixDropsPlan(n_frames, tuple(frames), tuple(actions), mode=mode)


# --- upsampling -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsamplePlan(_Streaming):
    """Plan for ``retime upsample``: a CFR output at ``out_rate`` covering the source's duration.

    Output frame ``j`` is at time ``start_time + j / out_rate`` seconds, PTS ``j`` in time base ``1 / out_rate``.

    Attributes:
        out_rate: output frame rate (frames per second, a ``Fraction``, e.g. ``Fraction(60000, 1001)``).
        start_time: time of the first source frame, which is also the first output frame's (seconds).
        n_source: number of source frames.
        frames: one op per output frame, in output order.
    """

    out_rate: Fraction
    start_time: Fraction
    n_source: int
    frames: tuple[Op, ...]

    @property
    def time_base(self) -> Fraction:
        """The output time base, ``1 / out_rate`` seconds per PTS tick."""
        return 1 / self.out_rate

    def time_of(self, j: int) -> Fraction:
        """Presentation time of output frame ``j`` (seconds)."""
        return self.start_time + j / self.out_rate

    def _n_source(self) -> int:
        return self.n_source

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "upsample",
            "out_rate": str(self.out_rate),
            "start_time": str(self.start_time),
            "n_source": self.n_source,
            "n_frames": len(self.frames),
            "synthesized": self.synthesized,
            "max_lookahead": self.max_lookahead,
            "frames": [op.to_dict() for op in self.frames],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpsamplePlan:
        """Inverse of :meth:`to_dict`; rates and times are stored as ``"num/den"`` strings."""
        return cls(Fraction(data["out_rate"]), Fraction(data["start_time"]), int(data["n_source"]),
                   tuple(op_from_dict(d) for d in data["frames"]))


def plan_upsample(times: Sequence[Fraction], out_rate: Fraction, cuts: Sequence[int],
                  end_time: Fraction, holds: Sequence[int] = ()) -> UpsamplePlan:
    """Plan a CFR output at ``out_rate`` from source frames at ``times`` (CFR or VFR).

    Output frame j is at ``T_j = times[0] + j / out_rate`` for every ``T_j < end_time``, so the output lasts as
    long as the input: ``ceil((end_time - times[0]) * out_rate)`` frames. With a the last source frame at or before
    ``T_j`` and b = a + 1:

    - ``T_j == times[a]``: ``Copy(a)`` (exact ``Fraction`` arithmetic, so 30000/1001 -> 60000/1001 copies every
      source frame);
    - a is the last source frame: ``Copy(a)``;
    - a scene cut between a and b (``b in cuts``): a copy of the nearer frame (a on a tie), never a blend across
      the cut;
    - a held timestamp gap before b (``b in holds``, a gap longer than ``max_run`` intervals): a copy of a;
    - otherwise ``Synth(a, b, t)`` with ``t = (T_j - times[a]) / (times[b] - times[a])``.

    ``--factor N`` is ``out_rate = N x source rate``, computed by the caller.

    Args:
        times: presentation time of each source frame (seconds, ``Fraction``, strictly increasing, at least one).
        out_rate: output frame rate (frames per second, > 0).
        cuts: scene cuts as in ``Detection.cuts`` (index c: a cut between source frames c - 1 and c).
        holds: source frames b whose gap from b - 1 is held, not interpolated across.
        end_time: end of the source (its last frame's time plus that frame's duration; seconds, > ``times[0]``).

    Raises:
        ValueError: no times, times not strictly increasing, ``out_rate <= 0`` or ``end_time <= times[0]``.
    """
    times = [Fraction(t) for t in times]
    out_rate = Fraction(out_rate)
    end_time = Fraction(end_time)
    if not times:
        raise ValueError("plan_upsample: no source frame times")
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ValueError(f"plan_upsample: source times must increase strictly; times[{i - 1}] = {times[i - 1]} "
                             f"and times[{i}] = {times[i]}")
    if out_rate <= 0:
        raise ValueError(f"plan_upsample: out_rate must be > 0 frames per second, got {out_rate}")
    if end_time <= times[0]:
        raise ValueError(f"plan_upsample: end_time {end_time} s must be after the first frame time {times[0]} s")
    cut_set, hold_set = set(cuts), set(holds)
    start = times[0]
    span = (end_time - start) * out_rate
    n_out = -(-span.numerator // span.denominator)  # ceil, exactly
    last = len(times) - 1
    frames: list[Op] = []
    a = 0
    for j in range(n_out):
        tj = start + Fraction(j) / out_rate
        while a < last and times[a + 1] <= tj:  # outputs are in time order: a only moves forward
            a += 1
        if tj == times[a] or a == last:
            frames.append(Copy(a))
            continue
        b = a + 1
        t = (tj - times[a]) / (times[b] - times[a])
        if b in hold_set:
            frames.append(Copy(a))
        elif b in cut_set:
            frames.append(Copy(a if t <= Fraction(1, 2) else b))
        else:
            frames.append(Synth(a, b, float(t)))
    return UpsamplePlan(out_rate, start, len(times), tuple(frames))
