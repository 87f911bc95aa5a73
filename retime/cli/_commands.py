"""``fix-drops``, ``upsample`` and ``detect``: options → settings → one call of :mod:`retime.pipeline`."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime._process import configure_process
from retime.cli._app import (EPILOG, CadenceMode, CadenceOpt, ChunkSecondsOpt, CodecOpt, CrfOpt, DebugOpt, Device,
                             DeviceOpt, EnsembleOpt, Executor, ExecutorOpt, GlobOpt, GpusPerTaskOpt, InPath,
                             InPathOrDir, JobsOpt, MaxRunOpt, MaxTriesOpt, ModelName, ModelOpt, OutPath, OverwriteOpt,
                             Precision, PrecisionOpt, PresetOpt, Quality, QualityOpt, QuietOpt, RayAddressOpt,
                             RecursiveOpt, RefineOpt, ReportOpt, ScaleOpt, SceneCutOpt, ThresholdOpt, WeightsOpt, app)
from retime.cli._exit import exit_point
from retime.cli._pipes import is_stdio, piped
from retime.cli._output import (_Bar, _batch_summary, _check_report, _file_line, _print_analysis, _summary,
                                _write_report)
from retime.defaults import DEFAULTS
from retime.errors import EXIT_SOME_FAILED, UsageError

def _settings(threshold: float, max_run: int, scene_cut: float):
    from retime.detect import DetectionSettings

    # the options' own ranges, in their own names (the settings' check names the rule a value breaks)
    if not DEFAULTS.duplicate_floor <= threshold < DEFAULTS.cut_min:
        raise UsageError(f"--threshold must be at least {DEFAULTS.duplicate_floor:g} and below {DEFAULTS.cut_min:g} "
                         f"grey levels (the least score a scene cut can have), got {threshold:g}")
    if not DEFAULTS.cut_min <= scene_cut <= 255:
        raise UsageError(f"--scene-cut must be in [{DEFAULTS.cut_min:g}, 255] grey levels, got {scene_cut:g}")
    return DetectionSettings(threshold=threshold, max_run=max_run, scene_cut=scene_cut)


def _model(weights: Path | None, scale: str, refine: bool, precision: Precision = Precision.auto,
           quality: Quality = Quality(DEFAULTS.quality), model: ModelName | None = None,
           ensemble: bool | None = None):
    from retime.pipeline import ModelSettings

    if scale.strip().lower() == "auto":
        value = None
    else:
        try:
            value = float(scale)
        except ValueError:
            raise UsageError(f"--scale must be auto or a number such as 2, 1 or 0.5, got {scale!r}") from None
    return ModelSettings(weights=weights, scale=value, refine=refine, precision=precision.value,
                         quality=quality.value, model=model.value if model else None, ensemble=ensemble)


def _encode(codec: str | None, crf: int, preset: str):
    from retime.media.encode import EncodeSettings

    return EncodeSettings(codec=codec, crf=crf, preset=preset)


#: Set by ``retime chunks plan fix-drops|upsample`` (retime.cli._chunks): the manifest to plan into instead of running.
PLAN_TO: contextvars.ContextVar[Path | None] = contextvars.ContextVar("retime_plan_to", default=None)


def _executor(executor: Executor, jobs: int | None, ray_address: str | None, gpus_per_task: float | None,
              max_tries: int):
    from retime.executor import ExecutorSettings, import_ray

    settings = ExecutorSettings(kind=executor.value, jobs=jobs, max_tries=max_tries,
                                ray_address=ray_address if executor is Executor.ray else None,
                                gpus_per_task=gpus_per_task)
    if settings.kind == "ray":
        import_ray()  # without the extra: the one-line usage error now, before any work
    return settings


def _folder(command: str, input: Path, output: Path, jobs: int, glob: list[str] | None, recursive: bool,
            report: Path | None, quiet: bool, options: dict, executor=None) -> None:
    """IN is a folder: every video in it through the same command (:func:`retime.batch.run_folder`); one line per
    file as it finishes, one summary, exit 6 if any file failed."""
    from retime.batch import MANIFEST, VIDEO_GLOBS, run_folder

    if report is not None:
        raise UsageError("--report is for one file; a folder run writes each report under OUT/.retime-reports and "
                         "lists them in OUT/retime-manifest.json")
    try:
        result = run_folder(command, input, output, jobs=jobs or 1, globs=tuple(glob) if glob else VIDEO_GLOBS,
                            recursive=recursive, on_file=None if quiet else _file_line, executor=executor, **options)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted; the files reported done are kept in {output} (listed in "
                                f"{output}/{MANIFEST}), the rest were not written") from None
    _batch_summary(result, quiet=quiet)
    if result.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _run(command: str, run, input: Path, output: Path, jobs: int | None, glob: list[str] | None, recursive: bool,
         report: Path | None, quiet: bool, options: dict, chunk_seconds: float | None = None, executor=None) -> None:
    """What fix-drops and upsample share once their options are settings: a folder run, a chunk plan (``retime
    chunks plan``), one file in chunks (``--chunk-seconds``), or one file with the progress bar and the summary."""
    plan_to = PLAN_TO.get()
    if plan_to is not None:
        return _plan(command, input, output, plan_to, chunk_seconds, quiet, options)
    if not is_stdio(input) and input.is_dir():  # - is stdin, even beside a folder named -
        if is_stdio(output):
            raise UsageError("IN is a folder, so OUT must be a folder too, not - (stdout carries one video)")
        if chunk_seconds is not None:
            raise UsageError("--chunk-seconds is for one file; a folder already runs its files in parallel (--jobs)")
        return _folder(command, input, output, jobs, glob, recursive, report, quiet, options, executor)
    if chunk_seconds is None and executor.kind != "local":
        raise UsageError("--executor ray runs a folder's files or a file's chunks: give a folder, or --chunk-seconds S")
    configure_process()
    _check_report(report, avoid=(input, output), overwrite=bool(options.get("overwrite")))
    with piped(input, output, options) as (source, target, options):
        with _Bar(not quiet) as bar:
            if chunk_seconds is None:
                result = run(source, target, progress=bar, report=report, **options)
            else:
                from retime.chunks import run_chunked

                result = run_chunked(command, source, target, chunk_seconds=chunk_seconds, executor=executor,
                                     progress=bar, report=report, **options)
    if not quiet:
        _summary(dataclasses.replace(result, input=input, output=output))  # "-", not the spool's name


def _plan(command: str, input: Path, output: Path, manifest: Path, chunk_seconds: float | None, quiet: bool,
          options: dict) -> None:
    """``retime chunks plan``: the manifest written, and what it holds on stdout (JSON: for a job array's size)."""
    from retime.chunks import CHUNK_SECONDS, plan_chunks

    configure_process()
    if is_stdio(input) or is_stdio(output):
        raise UsageError(f"retime chunks plan needs IN and OUT as files, not -: the chunk jobs read IN and the join "
                         f"writes OUT after the plan has exited. To run a pipe in chunks on this machine: "
                         f"retime {command} - OUT --chunk-seconds S")
    if input.is_dir():
        raise UsageError(f"{input}: retime chunks plan takes one video file (a folder: fix-drops IN_DIR OUT_DIR)")
    with _Bar(not quiet) as bar:
        made = plan_chunks(command, input, output, manifest,
                           chunk_seconds=CHUNK_SECONDS if chunk_seconds is None else chunk_seconds,
                           progress=bar, **options)
    data = made.manifest.data
    sys.stdout.write(json.dumps({"manifest": str(made.manifest.path), "chunks": len(data["chunks"]),
                                 "frames": len(data["frames"]), "synthesized": made.plan.synthesized,
                                 "command": command, "output": data["output"]}) + "\n")


@app.command("fix-drops", epilog=EPILOG)
@exit_point
def fix_drops_cmd(
    input: InPathOrDir,
    output: OutPath,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    max_run: MaxRunOpt = DEFAULTS.max_run,
    scene_cut: SceneCutOpt = DEFAULTS.scene_cut,
    codec: CodecOpt = None,
    crf: CrfOpt = DEFAULTS.crf,
    preset: PresetOpt = DEFAULTS.preset,
    device: DeviceOpt = Device(DEFAULTS.device),
    weights: WeightsOpt = None,
    quality: QualityOpt = Quality(DEFAULTS.quality),
    model: ModelOpt = None,
    scale: ScaleOpt = "auto",
    ensemble: EnsembleOpt = None,
    refine: RefineOpt = False,
    precision: PrecisionOpt = Precision.auto,
    cadence: CadenceOpt = CadenceMode.fill,
    overwrite: OverwriteOpt = False,
    report: ReportOpt = None,
    jobs: JobsOpt = None,
    glob: GlobOpt = None,
    recursive: RecursiveOpt = False,
    chunk_seconds: ChunkSecondsOpt = None,
    executor: ExecutorOpt = Executor.local,
    ray_address: RayAddressOpt = None,
    gpus_per_task: GpusPerTaskOpt = None,
    max_tries: MaxTriesOpt = 3,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find duplicated frames and replace them with interpolated ones; fill timestamp gaps of VFR captures.

    Source timestamps, duration and frame rate stay the input's (a capture with timestamp gaps comes out CFR at
    its nominal rate, each gap filled); every other frame passes through (bit-exact with --codec ffv1); audio and
    subtitles are copied.
    """
    from retime.pipeline import fix_drops

    settings, enc = _settings(threshold, max_run, scene_cut), _encode(codec, crf, preset)
    options = dict(detection=settings, encode=enc, device=device.value, overwrite=overwrite,
                   model=_model(weights, scale, refine, precision, quality, model, ensemble), cadence=cadence.value)
    _run("fix-drops", fix_drops, input, output, jobs, glob, recursive, report, quiet, options, chunk_seconds,
         _executor(executor, jobs, ray_address, gpus_per_task, max_tries))


@app.command("upsample", epilog=EPILOG)
@exit_point
def upsample_cmd(
    input: InPathOrDir,
    output: OutPath,
    factor: Annotated[Optional[int], typer.Option("--factor", "-f", help="Multiply the frame rate by N (N >= 2). "
                                                  f"Default {DEFAULTS.factor} when --fps is not given.",
                                                  show_default=False)] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", metavar="RATE",
                                               help="Target frame rate, e.g. 60 or 60000/1001.")] = None,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    max_run: MaxRunOpt = DEFAULTS.max_run,
    scene_cut: SceneCutOpt = DEFAULTS.scene_cut,
    codec: CodecOpt = None,
    crf: CrfOpt = DEFAULTS.crf,
    preset: PresetOpt = DEFAULTS.preset,
    device: DeviceOpt = Device(DEFAULTS.device),
    weights: WeightsOpt = None,
    quality: QualityOpt = Quality(DEFAULTS.quality),
    model: ModelOpt = None,
    scale: ScaleOpt = "auto",
    ensemble: EnsembleOpt = None,
    refine: RefineOpt = False,
    precision: PrecisionOpt = Precision.auto,
    overwrite: OverwriteOpt = False,
    report: ReportOpt = None,
    jobs: JobsOpt = None,
    glob: GlobOpt = None,
    recursive: RecursiveOpt = False,
    chunk_seconds: ChunkSecondsOpt = None,
    executor: ExecutorOpt = Executor.local,
    ray_address: RayAddressOpt = None,
    gpus_per_task: GpusPerTaskOpt = None,
    max_tries: MaxTriesOpt = 3,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Raise the frame rate by synthesizing frames between each pair (constant frame rate output).

    Duration kept; source frames pass through; nothing is blended across scene cuts.
    """
    from retime.pipeline import upsample

    settings, enc = _settings(threshold, max_run, scene_cut), _encode(codec, crf, preset)
    options = dict(factor=factor, fps=fps, detection=settings, encode=enc, device=device.value, overwrite=overwrite,
                   model=_model(weights, scale, refine, precision, quality, model, ensemble))
    _run("upsample", upsample, input, output, jobs, glob, recursive, report, quiet, options, chunk_seconds,
         _executor(executor, jobs, ray_address, gpus_per_task, max_tries))


@app.command("detect", epilog=EPILOG)
@exit_point
def detect_cmd(
    input: InPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON on stdout.")] = False,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    max_run: MaxRunOpt = DEFAULTS.max_run,
    scene_cut: SceneCutOpt = DEFAULTS.scene_cut,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Analyse only (no video written, no model loaded): duplicate runs with frame index, time and score, scene
    cuts, timing (nominal rate, timestamp gaps), repeat cadence, and what fix-drops would do."""
    from retime.pipeline import analyse

    settings = _settings(threshold, max_run, scene_cut)
    _check_report(report, avoid=(input,), overwrite=None)  # detect has no -y
    with _Bar(not quiet and not as_json) as bar:
        analysis = analyse(input, settings, progress=bar)
    data = analysis.to_dict()
    _write_report(report, data, avoid=(input,), overwrite=None)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif not quiet:
        _print_analysis(analysis)
