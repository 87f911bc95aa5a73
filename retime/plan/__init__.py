"""Plans: plain, serializable data that says what every output frame is, between analysis and rendering.

Each output frame is either a :class:`Copy` of one source frame or a :class:`Synth` (synthesized) frame between two
source frames at a time ``t`` in (0, 1). A plan is built from the analysis (pass 1: grey frames, scores,
:class:`retime.detect.Detection`) and rendered by streaming full frames through it (pass 2). Plans need no numpy,
no torch and no video files, so they are tested on their own, printed by ``detect --json`` and in ``--report``,
and read back by ``from_dict`` (a stored plan renders the same frames).

Source frame indices count from 0 in decode (presentation) order. Times are ``Fraction`` seconds; PTS are integers
in a stated time base; never a float frame rate.

Streaming: both plans list their ops in output order and say, for output ``j``, which source frames it needs
(:meth:`~FixDropsPlan.needs`) and the lowest source index still needed from ``j`` on (:meth:`~FixDropsPlan.keep_from`),
so a renderer holds a window of at most ``max_lookahead`` source frames and releases the rest.

The package's modules: :mod:`._ops` (the operations and streaming), :mod:`._fix_drops`, :mod:`._cadence`,
:mod:`._upsample` (one planner each).
"""

from retime.plan._ops import Copy, Op, Synth, op_from_dict
from retime.plan._fix_drops import (FixDropsPlan, GapAction, INTERPOLATE, KEEP_CUT, KEEP_EDGE, KEEP_FREEZE, KEEP_HOLD,
                                    RunAction, plan_fix_drops)
from retime.plan._cadence import CADENCE_MODES, DROP, KEEP_OFF_CADENCE, RETIME, plan_cadence
from retime.plan._upsample import UpsamplePlan, plan_upsample

__all__ = ["CADENCE_MODES", "Copy", "DROP", "FixDropsPlan", "GapAction", "INTERPOLATE", "KEEP_CUT", "KEEP_EDGE",
           "KEEP_FREEZE", "KEEP_HOLD", "KEEP_OFF_CADENCE", "Op", "RETIME", "RunAction", "Synth", "UpsamplePlan",
           "op_from_dict", "plan_cadence", "plan_fix_drops", "plan_upsample"]
