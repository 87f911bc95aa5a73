"""The plans of ``fix-drops --cadence retime`` and ``--cadence decimate`` for a video with a repeat cadence."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from retime.plan._fix_drops import FixDropsPlan, RunAction
from retime.plan._ops import Copy, Op, Synth

if TYPE_CHECKING:  # a plan needs only the shape of a Detection and a Cadence, not numpy
    from retime.detect import Detection
    from retime.timing import Cadence


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
