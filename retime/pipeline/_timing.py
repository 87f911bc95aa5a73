"""The timing maths of the outputs: upsample's output rate, the CFR output timeline, source times snapped onto it,
and the stamps of frames filled into timestamp gaps (exact ``Fraction`` arithmetic, no files)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

from retime.defaults import DEFAULTS
from retime.errors import UsageError
from retime.media.probe import VideoInfo
from retime.pipeline._analysis import Analysis
from retime.plan import FixDropsPlan

__all__ = ["MAX_RATE", "parse_rate", "snap_times", "upsample_rate"]


def _gap_stamps(plan: FixDropsPlan, analysis: Analysis) -> Callable[[int], tuple[int, int]]:
    """(PTS, duration) of each output frame of a plan with gaps filled, in the input's time base: a source frame
    keeps its PTS; the i-th of k frames in the gap after source frame a is at ``i / (k + 1)`` of the way to the
    next (rounded to a tick; the timing analysis leaves at least one tick per frame, so PTS stay increasing)."""
    pts = analysis.pts
    out = []
    for j in range(len(plan.frames)):
        position = plan.position(j)
        a = position.numerator // position.denominator
        fraction = position - a
        out.append(pts[a] if not fraction else pts[a] + round(fraction * (pts[a + 1] - pts[a])))
    durations = [b - a for a, b in zip(out, out[1:])] + [analysis.durations[-1]]
    return lambda j: (out[j], durations[j])


#: Highest output frame rate upsample accepts (frames per second): a guard against a typo that would synthesize
#: millions of frames.
MAX_RATE = 1000


def upsample_rate(info: VideoInfo, *, factor: int | None = None, fps: Fraction | str | float | None = None,
                  source_rate: Fraction | None = None) -> Fraction:
    """The output frame rate: ``factor`` times the source rate, or ``fps`` (frames per second).

    ``source_rate`` is the nominal rate from the timing analysis (:attr:`Analysis.timing`); before pass 1 the
    container's rate ``info.frame_rate`` stands in (an average, lower than the nominal rate when frames are
    missing).

    Raises:
        UsageError: both or neither given, ``factor < 2``, ``fps`` not a positive number or not above the source
            rate.
    """
    source = source_rate or info.frame_rate
    if factor is not None and fps is not None:
        raise UsageError("give either --factor or --fps, not both")
    if fps is not None:
        rate = parse_rate(fps)
        if rate <= source:
            raise UsageError(f"--fps {fps} is not above the source rate {source} fps ({float(source):.3f}); "
                             f"upsample only raises the rate (to repair drops at the same rate use fix-drops)")
        return rate
    factor = DEFAULTS.factor if factor is None else factor
    if int(factor) != factor or factor < 2:
        raise UsageError(f"--factor must be an integer >= 2, got {factor}")
    rate = source * int(factor)
    if rate > MAX_RATE:
        raise UsageError(f"--factor {factor} would give {float(rate):g} fps; the most is {MAX_RATE} fps")
    return rate


def parse_rate(value: Fraction | str | float | int) -> Fraction:
    """A frame rate from ``60``, ``"59.94"``, ``"60000/1001"`` or a Fraction (frames per second, > 0).

    Raises:
        UsageError: not a positive finite number.
    """
    try:
        rate = Fraction(str(value).strip()) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps must be a positive number such as 60 or 60000/1001, got {value!r}") from None
    if rate <= 0 or rate > MAX_RATE:
        raise UsageError(f"--fps must be in (0, {MAX_RATE}] frames per second, got {value!r}")
    return rate


def _output_timeline(rate: Fraction, start: Fraction) -> tuple[Fraction, int, int]:
    """(time base, PTS of the first frame, ticks per frame) for a CFR output at ``rate`` starting at ``start``.

    The time base is 1/L with L a multiple of the rate's numerator and of the start time's denominator, so every
    output time ``start + j / rate`` is an exact integer PTS (60000/1001 fps from 0: time base 1/60000, 1001 ticks
    per frame). L must fit FFmpeg's 32-bit rationals; past that the start is rounded to the nearest tick.
    """
    step = 1 / rate
    denominator = math.lcm(step.denominator, start.denominator)
    if denominator >= 2**31:
        denominator = step.denominator
    time_base = Fraction(1, denominator)
    ticks = step / time_base
    return time_base, round(start / time_base), int(ticks)


def snap_times(times: Sequence[Fraction], out_rate: Fraction, *, tolerance: Fraction) -> list[Fraction]:
    """Source frame times moved onto the output grid ``times[0] + j / out_rate`` where they lie within
    ``tolerance`` seconds of it (and the order stays strict), so that they are copied, not re-synthesized.

    A container's time base rounds timestamps: in Matroska (1 ms) a 30000/1001 fps frame sits at 0.067 s, not at
    1001/15000 s, and an exact comparison would synthesize every source frame at t = 0.005 instead of passing it
    through. Half a tick of the input's time base is the rounding error, so that is the tolerance to pass.
    """
    if not times:
        return []
    start = times[0]
    out = [start]
    for t in times[1:]:
        j = round((t - start) * out_rate)
        grid = start + j / out_rate
        snapped = grid if abs(grid - t) <= tolerance and grid > out[-1] else t
        out.append(snapped if snapped > out[-1] else t)
    return out
