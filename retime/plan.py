"""Plans: plain, serializable data that says what every output frame is, between analysis and rendering.

Each output frame is either a :class:`Copy` of one source frame or a :class:`Synth` (synthesized) frame between two
source frames at a time ``t`` in (0, 1). A plan is built from the analysis (pass 1: grey frames, scores,
:class:`retime.detect.Detection`) and rendered by streaming full frames through it (pass 2). Plans need no numpy,
no torch and no video files, so they are tested on their own and printed by ``--dry-run`` / ``detect --json``.

Source frame indices count from 0 in decode (presentation) order. Times are ``Fraction`` seconds; PTS are integers
in a stated time base; never a float frame rate.

Streaming: both plans iterate in output order and say, for output ``j``, which source frames it needs
(:meth:`~FixDropsPlan.needs`) and the lowest source index still needed from ``j`` on (:meth:`~FixDropsPlan.keep_from`),
so a renderer holds a window of at most ``max_lookahead`` source frames and releases the rest.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # plan.py needs only the shape of a Detection, not numpy
    from retime.detect import Detection

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

    ``t`` is the fraction of the way from ``left`` to ``right`` (0 would be ``left``, 1 ``right``), as in DESIGN.md
    section B: ``t = (t3 - t1) / (t2 - t1)`` for frame times ``t1 < t3 < t2``.

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


@dataclass(frozen=True)
class OutputFrame:
    """One output frame, as iteration over a plan yields it.

    Attributes:
        index: output frame number, from 0.
        op: how to make it.
        pts: upsampling: the PTS in the plan's time base ``1 / out_rate`` (equal to ``index``); fix-drops:
            ``None``, the output frame keeps the PTS of source frame ``index`` (timing is unchanged).
    """

    index: int
    op: Op
    pts: int | None = None


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

#: Actions for a run of duplicates, as reports print them.
INTERPOLATE = "interpolate"
KEEP_FREEZE = "keep-freeze"
KEEP_CUT = "keep-cut"
KEEP_EDGE = "keep-edge"


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
class FixDropsPlan(_Streaming):
    """Plan for ``retime fix-drops``: exactly ``n_frames`` output frames, output frame ``i`` at source frame
    ``i``'s PTS, so the frame count and the duration are unchanged (DESIGN.md section A).

    Attributes:
        n_frames: source and output frame count.
        frames: ``frames[i]`` is ``Copy(i)`` or, for a repaired duplicate, ``Synth(left, right, t)``.
        runs: one :class:`RunAction` per detected run of duplicates, ascending.
    """

    n_frames: int
    frames: tuple[Op, ...]
    runs: tuple[RunAction, ...]

    def __iter__(self) -> Iterator[OutputFrame]:
        for i, op in enumerate(self.frames):
            yield OutputFrame(i, op)

    def _n_source(self) -> int:
        return self.n_frames

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "fix-drops",
            "n_frames": self.n_frames,
            "synthesized": self.synthesized,
            "max_lookahead": self.max_lookahead,
            "runs": [run.to_dict() for run in self.runs],
            "frames": [op.to_dict() for op in self.frames],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixDropsPlan:
        """Inverse of :meth:`to_dict` (derived fields are recomputed)."""
        return cls(int(data["n_frames"]), tuple(op_from_dict(d) for d in data["frames"]),
                   tuple(RunAction.from_dict(d) for d in data["runs"]))


def plan_fix_drops(n_frames: int, detection: Detection) -> FixDropsPlan:
    """Plan the repair of duplicated (dropped) frames, DESIGN.md section A.

    Every output frame is ``Copy(i)`` except the duplicates of a repairable run: k duplicates between the distinct
    frames A = start - 1 and B = start + k become ``Synth(A, B, m / (k + 1))`` for m = 1 .. k (the design's
    example: a, b, c, d with b repeating a gives a, x, c, d with x between a and c at t = 1/2). A run is kept
    (left as copies) when, checked in this order, it is longer than ``detection.settings.max_run`` (a freeze), it
    reaches the last frame (no B), or a scene cut lies between A and B.

    Args:
        n_frames: number of source frames (>= 1).
        detection: the result of :func:`retime.detect.detect` on this video's scores.

    Raises:
        ValueError: ``n_frames`` is below 1 or does not match ``detection.n_frames``.
    """
    if n_frames < 1:
        raise ValueError(f"plan_fix_drops: n_frames must be >= 1, got {n_frames}")
    if detection.n_frames != n_frames:
        raise ValueError(f"plan_fix_drops: n_frames={n_frames} but the detection covers {detection.n_frames} frames")
    max_run = detection.settings.max_run
    cuts = sorted(detection.cuts)
    frames: list[Op] = [Copy(i) for i in range(n_frames)]
    actions: list[RunAction] = []
    for run in detection.runs:
        a, b, k = run.left, run.right, run.length
        # the first cut after frame A, if any: a cut at c separates frames c - 1 and c
        pos = bisect.bisect_right(cuts, a)
        cut = cuts[pos] if pos < len(cuts) and cuts[pos] <= b else None
        if k > max_run:
            action, detail = KEEP_FREEZE, f"{k} duplicates > max_run {max_run}: an intentional freeze, kept"
        elif b >= n_frames:
            action, detail = KEEP_EDGE, "the run reaches the last frame: no frame after it to interpolate towards"
        elif cut is not None:
            action, detail = (KEEP_CUT, f"scene cut between frames {cut - 1} and {cut}: not blended across it; "
                                        f"the duplicates stay copies of frame {a}, the same shot")
        else:
            action, detail = INTERPOLATE, f"{k} frame(s) synthesized between frames {a} and {b}"
            for m in range(1, k + 1):
                frames[a + m] = Synth(a, b, m / (k + 1))
        actions.append(RunAction(run.start, k, a, b, action, detail))
    return FixDropsPlan(n_frames, tuple(frames), tuple(actions))


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

    def __iter__(self) -> Iterator[OutputFrame]:
        for j, op in enumerate(self.frames):
            yield OutputFrame(j, op, pts=j)

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
                  end_time: Fraction) -> UpsamplePlan:
    """Plan a CFR output at ``out_rate`` from source frames at ``times`` (CFR or VFR).

    Output frame j is at ``T_j = times[0] + j / out_rate`` for every ``T_j < end_time``, so the output lasts as
    long as the input: ``ceil((end_time - times[0]) * out_rate)`` frames. With a the last source frame at or before
    ``T_j`` and b = a + 1:

    - ``T_j == times[a]``: ``Copy(a)`` (exact ``Fraction`` arithmetic, so 30000/1001 -> 60000/1001 copies every
      source frame);
    - a is the last source frame: ``Copy(a)``;
    - a scene cut between a and b (``b in cuts``): a copy of the nearer frame (a on a tie), never a blend across
      the cut;
    - otherwise ``Synth(a, b, t)`` with ``t = (T_j - times[a]) / (times[b] - times[a])``.

    ``--factor N`` is ``out_rate = N x source rate``, computed by the caller.

    Args:
        times: presentation time of each source frame (seconds, ``Fraction``, strictly increasing, at least one).
        out_rate: output frame rate (frames per second, > 0).
        cuts: scene cuts as in ``Detection.cuts`` (index c: a cut between source frames c - 1 and c).
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
    cut_set = set(cuts)
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
        if b in cut_set:
            frames.append(Copy(a if t <= Fraction(1, 2) else b))
        else:
            frames.append(Synth(a, b, float(t)))
    return UpsamplePlan(out_rate, start, len(times), tuple(frames))
