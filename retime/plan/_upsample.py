"""The plan of ``retime upsample``: a CFR output, each frame a copy or synthesized at its exact time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from retime.plan._ops import Copy, Op, Synth, _Streaming, op_from_dict


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
