"""The plan of ``retime fix-drops`` (``--cadence fill``): duplicates replaced in place, timestamp gaps filled."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from retime.plan._ops import Copy, Op, Synth, _Streaming, op_from_dict

if TYPE_CHECKING:  # a plan needs only the shape of a Detection and a Gap, not numpy
    from retime.detect import Detection
    from retime.timing import Gap


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
        action: ``"interpolate"`` (k frames synthesized between the distinct frames around the gap, or, right
            after a freeze, between the freeze's last frame and B),
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


def _trailing_gap(entries: list[tuple[Fraction, int | None]], inner: range) -> list[int]:
    """The output slots of ``inner`` that belong to the timestamp gap right before the stretch's end (source frame
    ``None`` in ``entries``), in order; empty when the stretch ends with a source frame."""
    tail = []
    for j in reversed(inner):
        if entries[j][1] is not None:
            break
        tail.append(j)
    return tail[::-1]


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
    One exception to the hold: a gap of at most ``max_run`` frames right after a freeze (a run of more than
    ``max_run`` duplicates, the gap just before B) is where the motion resumed; the freeze is kept and the gap's
    frames are synthesized between the freeze's last frame and B.

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
        tail = _trailing_gap(entries, inner)
        if run is not None and run.length > max_run and 0 < len(tail) <= max_run and b < n_frames and cut is None:
            # a gap right after a freeze: the pause is kept, and the frames missing where the motion resumed are
            # made from its last frame (frame A's picture, and the nearest: no window back to A) and B
            k, last = len(tail), entries[tail[0] - 1][1]
            inner_gaps = sum(g for i, g in stretch_gaps if i < b)
            inside = f" (with {inner_gaps} frame(s) of timestamp gaps inside it, held)" if inner_gaps else ""
            run_action = (KEEP_FREEZE, f"{run.length} duplicates{inside} > max_run {max_run}: an intentional "
                                       f"freeze, kept; the {k} frame(s) missing after it are synthesized")
            for m, j in enumerate(tail, start=1):
                frames[j] = Synth(last, b, m / (k + 1))
            run_actions.append(RunAction(run.start, run.length, a, b, *run_action))
            gap_actions += [GapAction(i, g, KEEP_HOLD, f"inside a freeze of {run.length} duplicates: frame {a} held")
                            for i, g in stretch_gaps if i < b]
            gap_actions.append(GapAction(b, missing_before[b], INTERPOLATE,
                                         f"{k} frame(s) synthesized between frames {last} and {b}, after a freeze "
                                         f"of {run.length} duplicates of frame {a} (kept)"))
            continue
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
