"""The two commands that write a video, :func:`fix_drops` and :func:`upsample`: one setup (probe, checks, the
staged output, the writer opened before any work), pass 1, the command's own plan and timeline, pass 2, and one tail
(the result, the ``--report`` committed with the video)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

from retime import __version__
from retime.defaults import DEFAULTS
from retime.detect import DetectionSettings
from retime.errors import UsageError
from retime.media.decode import iter_frames
from retime.media.encode import EncodeSettings, VideoWriter, atomic_output, check_output_path
from retime.media.probe import VideoInfo, probe
from retime.pipeline import _analysis, _model  # looked up at call time: a stand-in put there reaches the commands
from retime.pipeline._analysis import Analysis
from retime.pipeline._model import (ModelSettings, _check_device, _device_name, _memo, _settle_engine, _Warm,
                                    tuning_positions)
from retime.pipeline._protocols import FrameInterpolator, Progress, _no_progress
from retime.pipeline._render import _write_through
from retime.pipeline._timing import _gap_stamps, _output_timeline, snap_times, upsample_rate
from retime.plan import CADENCE_MODES, KEEP_HOLD, FixDropsPlan, UpsamplePlan, plan_upsample
from retime.timing import TimingSettings

__all__ = ["RunResult", "fix_drops", "upsample"]

Stamps = Callable[[int], "tuple[int, int]"]


@dataclass
class RunResult:
    """What a :func:`fix_drops` or :func:`upsample` run did (``to_dict`` is the ``--report`` JSON)."""

    command: str
    input: Path
    output: Path
    analysis: Analysis
    plan: FixDropsPlan | UpsamplePlan
    frames_written: int
    synthesized: int
    seconds: float
    encoder: str
    pix_fmt: str
    out_rate: Fraction
    device: str | None = None
    peak_window: int = 0  # most source frames held at once in pass 2 (bounded by plan.max_lookahead)
    #: the model and its settings as used, with the evidence of the scale search (``None``: nothing synthesized
    #: or an injected interpolator)
    model: dict[str, Any] | None = None
    #: what the encoder noted (e.g. a stream that could not be copied)
    notes: list[str] = field(default_factory=list)
    #: fix-drops' ``--cadence`` mode (``None`` for upsample, whose report has no such key)
    cadence_mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "retime": __version__,
            "command": self.command,
            "input": str(self.input),
            "output": str(self.output),
            "analysis": self.analysis.to_dict(),
            "frames_in": self.analysis.n_frames,
            "frames_out": self.frames_written,
            "synthesized": self.synthesized,
            "out_rate": str(self.out_rate),
            "encoder": self.encoder,
            "pix_fmt": self.pix_fmt,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            # upsampling, and fix-drops with --cadence retime/decimate: not the analysis's (fill) plan
            "output_plan": self.plan.to_dict() if self.plan is not self.analysis.plan else None,
            "model": self.model,
            "notes": self.notes,
            **({"cadence_mode": self.cadence_mode} if self.cadence_mode is not None else {}),
        }


@dataclass(frozen=True)
class _Output:
    """What a command decides after pass 1: the plan to render, the output's time base and rate, and each output
    frame's ``(PTS, duration)``."""

    plan: FixDropsPlan | UpsamplePlan
    time_base: Fraction
    rate: Fraction
    stamps: Stamps


def _run(command: str, input: str | Path, output: str | Path, info: VideoInfo, *, started: float,
         time_base: Fraction, rate: Fraction, decide: Callable[[Analysis], _Output],
         get_engine: Callable[[], FrameInterpolator], injected: bool, detection: DetectionSettings | None,
         encode: EncodeSettings, device: str, model: ModelSettings | None, overwrite: bool, progress: Progress,
         report: str | Path | None, timing: TimingSettings | None, prefer_finer: bool,
         cadence_mode: str | None = None, planned: Callable[..., None] | None = None) -> RunResult:
    """The part both commands share, from the staged output to the report.

    The writer is opened (at ``time_base`` and ``rate``) before pass 1, so that an unusable codec or stream is
    reported before any work, and opened again in the rare case that the output's time base or rate turns out
    otherwise after pass 1. On any error (and on KeyboardInterrupt) nothing is left behind.

    ``planned``: called with ``analysis``, ``output`` (the :class:`_Output`), ``tuning`` (the report's model
    section) and ``writer`` once the plan and the model's settings are made, before pass 2; :mod:`retime.chunks`
    saves them there and raises to stop the run (then nothing is written).
    """
    # the engine building in the background: never return or raise while the build is inside torch
    with _settled(get_engine) as settle, atomic_output(output, input=input, overwrite=overwrite) as staged:
        writer = VideoWriter(staged.path, info, settings=encode, time_base=time_base, rate=rate, label=output)
        try:
            keep = tuning_positions(info, model) if not injected else []
            check = getattr(get_engine, "check", None)

            def watched(stage: str, done: int, total: int | None) -> None:
                if check is not None:
                    check()  # the engine loading beside pass 1 failed: stop now, not after the whole decode
                progress(stage, done, total)

            analysis = _analysis.analyse(input, detection, info=info, progress=watched, keep_rgb=keep,
                                          timing=timing)
            out = decide(analysis)
            if (out.time_base, out.rate) != (time_base, rate):
                writer.abort()
                writer = VideoWriter(staged.path, info, settings=encode, time_base=out.time_base, rate=out.rate,
                                     label=output)
            get_engine, tuning = _settle_engine(get_engine, injected, analysis, out.plan, model, device,
                                                prefer_finer=prefer_finer)
            if planned is not None:
                planned(analysis=analysis, output=out, tuning=tuning, writer=writer)
            peak = _write_through(writer, out.stamps, out.plan, lambda: iter_frames(input), get_engine, progress)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        settle()  # before the output is committed: an interrupt while waiting leaves nothing behind
        result = RunResult(command=command, input=Path(input), output=Path(output), analysis=analysis,
                           plan=out.plan, frames_written=writer.frames_written, synthesized=out.plan.synthesized,
                           seconds=time.monotonic() - started, encoder=writer.encoder, pix_fmt=writer.pix_fmt,
                           out_rate=out.rate, device=_device_name(get_engine) if out.plan.synthesized else None,
                           peak_window=peak, model=tuning,
                           notes=writer.notes, cadence_mode=cadence_mode)
        if report is not None:
            staged.attach(report, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return result


@contextlib.contextmanager
def _settled(get_engine: Callable[[], FrameInterpolator]) -> Iterator[Callable[[], None]]:
    """Wait for the engine's background build (:meth:`_Warm.settle`) when the block ends, however it ends; the
    block gets the wait itself, to call earlier (a no-op for an engine built in place)."""
    settle = getattr(get_engine, "settle", lambda: None)
    try:
        yield settle
    finally:
        settle()


def _engine_factory(interpolator: FrameInterpolator | None, device: str,
                    model: ModelSettings | None) -> Callable[[], FrameInterpolator]:
    """The injected interpolator, or the default one, whose build starts now in the background (:class:`_Warm`);
    remembered either way."""
    if interpolator is not None:
        return _memo(lambda: interpolator)
    return _Warm(_model._default_interpolator(device, model))


def fix_drops(input: str | Path, output: str | Path, *, detection: DetectionSettings | None = None,
              encode: EncodeSettings | None = None, interpolator: FrameInterpolator | None = None,
              device: str = DEFAULTS.device, model: ModelSettings | None = None, overwrite: bool = False,
              progress: Progress | None = None, report: str | Path | None = None,
              timing: TimingSettings | None = None, cadence: str = "fill",
              planned: Callable[..., None] | None = None) -> RunResult:
    """Replace duplicated frames with interpolated ones and fill timestamp gaps; every other frame, every source
    timestamp (PTS), the duration and the frame rate stay the input's. Other streams are copied.

    A run of k duplicates between distinct frames A and B becomes A, I(1/(k+1)), ..., I(k/(k+1)), B; runs longer
    than ``detection.max_run`` (freezes), runs at the end and runs across a scene cut are kept. On a CFR input with
    timestamp gaps (a VFR capture that dropped frames) each gap of k missing intervals gets k frames, interpolated
    the same way, at even PTS between its neighbours: the output is CFR at the nominal rate
    (:attr:`Analysis.timing`); a gap of more than ``max_run`` intervals or across a cut is held (copies of A).

    ``cadence``: ``"fill"`` (the above), or, on a video whose repeats follow a cadence, ``"retime"`` (every frame
    re-timed to even motion, same rate and duration) or ``"decimate"`` (the repeats dropped, output at the source
    rate); see :func:`retime.plan.plan_cadence`.

    Args:
        input, output: file paths; ``output``'s extension picks the container.
        detection: detection settings (defaults: :data:`retime.defaults.DEFAULTS`).
        encode: codec, CRF, preset of the output.
        interpolator: an object with ``interpolate(frame0, frame1, ts)``; ``None`` builds
            ``Interpolator(device=device)`` if (and only if) something must be synthesized.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for the default interpolator.
        model: weights, scale and refinement of the default interpolator.
        overwrite: replace an existing ``output``.
        progress: ``progress(stage, done, total)`` callback.
        report: write :meth:`RunResult.to_dict` there as JSON, committed together with the video (both or neither).
        timing: timing-analysis settings (gap threshold, cadence regularity).
        cadence: ``"fill"``, ``"retime"`` or ``"decimate"``.
        planned: :mod:`retime.chunks`' hook after the plan, before pass 2 (see ``_run``); ``None`` for every other use.

    Raises:
        InputError, OutputError, ModelError, UsageError: see :mod:`retime.errors` (UsageError also for a cadence
        mode on a video without a cadence); on any error (and on KeyboardInterrupt) no output file is left behind.
    """
    started = time.monotonic()
    if cadence not in CADENCE_MODES:
        raise UsageError(f"--cadence must be one of {', '.join(CADENCE_MODES)}, got {cadence!r}")
    info = probe(input)
    check_output_path(Path(output), input=Path(input), overwrite=overwrite)
    if interpolator is None and device != "auto":
        _check_device(device)  # an explicit --device cuda without CUDA fails now, not after pass 1

    def decide(analysis: Analysis) -> _Output:
        plan = analysis.cadence_plan(cadence)
        if plan.out_rate is not None:  # decimation: CFR at the source rate, re-stamped
            time_base, first_pts, ticks = _output_timeline(plan.out_rate, analysis.times[0])
            return _Output(plan, time_base, plan.out_rate, lambda j: (first_pts + j * ticks, ticks))
        if plan.positions is not None:  # gaps filled: CFR at the nominal rate
            return _Output(plan, info.time_base, analysis.timing.rate, _gap_stamps(plan, analysis))
        return _Output(plan, info.time_base, info.frame_rate, lambda j: (analysis.pts[j], analysis.durations[j]))

    # the engine starts loading beside pass 1 (a failure stops it early); _run waits for it whatever happens
    return _run("fix-drops", input, output, info, started=started, time_base=info.time_base, rate=info.frame_rate,
                decide=decide, get_engine=_engine_factory(interpolator, device, model),
                injected=interpolator is not None, detection=detection,
                encode=encode or EncodeSettings(), device=device, model=model, overwrite=overwrite,
                progress=progress or _no_progress, report=report, timing=timing, prefer_finer=False,
                cadence_mode=cadence, planned=planned)


def upsample(input: str | Path, output: str | Path, *, factor: int | None = None,
             fps: Fraction | str | float | None = None, detection: DetectionSettings | None = None,
             encode: EncodeSettings | None = None, interpolator: FrameInterpolator | None = None,
             device: str = DEFAULTS.device, model: ModelSettings | None = None, overwrite: bool = False,
             progress: Progress | None = None, report: str | Path | None = None,
             timing: TimingSettings | None = None, planned: Callable[..., None] | None = None) -> RunResult:
    """Raise the frame rate to ``factor`` x the input's nominal rate or to ``fps``: a constant-frame-rate output of
    the same duration, source frames passed through, frames synthesized at the exact time between each pair,
    nothing blended across scene cuts. Other streams are copied.

    Args:
        factor: integer >= 2 (default :data:`DEFAULTS.factor` when ``fps`` is not given either), times the
            nominal rate of the timing analysis (not the average, which timestamp gaps lower).
        fps: any rational rate above the source's, e.g. ``"60000/1001"``.
        other arguments: as :func:`fix_drops`. Timestamp gaps longer than ``max_run`` intervals are held (the
        frame before them copied), not interpolated across.

    Raises:
        UsageError: bad ``factor``/``fps`` (``fps`` at or below the source rate); and as :func:`fix_drops`.
    """
    started = time.monotonic()
    info = probe(input)
    out_rate = upsample_rate(info, factor=factor, fps=fps)
    check_output_path(Path(output), input=Path(input), overwrite=overwrite)
    start = (info.start_pts or 0) * info.time_base

    def decide(analysis: Analysis) -> _Output:
        # the container's rate is an average, lowered by timestamp gaps: the nominal rate's multiple is the output's
        rate = upsample_rate(info, factor=factor, fps=fps, source_rate=analysis.timing.rate)
        time_base, first_pts, ticks = _output_timeline(rate, start)
        times = snap_times(analysis.times, rate, tolerance=info.time_base / 2)
        # the end is a rounded PTS plus a rounded duration: up to one tick off the grid
        end = snap_times([times[0], analysis.end_time], rate, tolerance=info.time_base)[1]
        holds = [g.index for g in analysis.plan.gaps if g.action == KEEP_HOLD]
        plan = plan_upsample(times, rate, analysis.detection.cuts, end, holds)
        if plan.start_time != start:  # the first frame's PTS differs from the probe's: keep exact times
            first_pts = round(plan.start_time / time_base)
        return _Output(plan, time_base, rate, lambda j: (first_pts + j * ticks, ticks))

    # neighbours one interval apart move half as far as those around a rebuilt frame: ties go finer
    return _run("upsample", input, output, info, started=started, time_base=_output_timeline(out_rate, start)[0],
                rate=out_rate, decide=decide, get_engine=_engine_factory(interpolator, device, model),
                injected=interpolator is not None,
                detection=detection, encode=encode or EncodeSettings(), device=device, model=model,
                overwrite=overwrite, progress=progress or _no_progress, report=report, timing=timing,
                prefer_finer=True, planned=planned)
