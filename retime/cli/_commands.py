"""``fix-drops``, ``upsample`` and ``detect``: options → settings → one call of :mod:`retime.pipeline`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime._process import configure_process
from retime.cli._app import (EPILOG, CadenceMode, CadenceOpt, CodecOpt, CrfOpt, DebugOpt, Device, DeviceOpt,
                             EnsembleOpt, InPath, MaxRunOpt, ModelName, ModelOpt, OutPath, OverwriteOpt, Precision,
                             PrecisionOpt, PresetOpt, Quality, QualityOpt, QuietOpt, RefineOpt, ReportOpt, ScaleOpt,
                             SceneCutOpt, ThresholdOpt, WeightsOpt, app)
from retime.cli._exit import exit_point
from retime.cli._output import _Bar, _check_report, _print_analysis, _summary, _write_report
from retime.defaults import DEFAULTS
from retime.errors import UsageError

def _settings(threshold: float, max_run: int, scene_cut: float):
    from retime.detect import DetectionSettings

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


@app.command("fix-drops", epilog=EPILOG)
@exit_point
def fix_drops_cmd(
    input: InPath,
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
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find duplicated frames and replace them with interpolated ones; fill timestamp gaps of VFR captures.

    Source timestamps, duration and frame rate stay the input's (a capture with timestamp gaps comes out CFR at
    its nominal rate, each gap filled); every other frame passes through (bit-exact with --codec ffv1); audio and
    subtitles are copied.
    """
    from retime.pipeline import fix_drops

    configure_process()
    settings, enc = _settings(threshold, max_run, scene_cut), _encode(codec, crf, preset)
    _check_report(report, avoid=(input, output))
    with _Bar(not quiet) as bar:
        result = fix_drops(input, output, detection=settings, encode=enc, device=device.value,
                           model=_model(weights, scale, refine, precision, quality, model, ensemble),
                           overwrite=overwrite, progress=bar, report=report, cadence=cadence.value)
    if not quiet:
        _summary(result)


@app.command("upsample", epilog=EPILOG)
@exit_point
def upsample_cmd(
    input: InPath,
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
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Raise the frame rate by synthesizing frames between each pair (constant frame rate output).

    Duration kept; source frames pass through; nothing is blended across scene cuts.
    """
    from retime.pipeline import upsample

    configure_process()
    settings, enc = _settings(threshold, max_run, scene_cut), _encode(codec, crf, preset)
    _check_report(report, avoid=(input, output))
    with _Bar(not quiet) as bar:
        result = upsample(input, output, factor=factor, fps=fps, detection=settings, encode=enc,
                          device=device.value, model=_model(weights, scale, refine, precision, quality, model, ensemble),
                          overwrite=overwrite, progress=bar, report=report)
    if not quiet:
        _summary(result)


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
    _check_report(report, avoid=(input,))
    with _Bar(not quiet and not as_json) as bar:
        analysis = analyse(input, settings, progress=bar)
    data = analysis.to_dict()
    _write_report(report, data, avoid=(input,))
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif not quiet:
        _print_analysis(analysis)
