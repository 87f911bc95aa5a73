"""The Typer app, its exit-code epilog, and the option types the commands share (one definition each)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime import __version__
from retime.errors import (EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OUTPUT,
                           EXIT_SOME_FAILED, EXIT_USAGE)

EPILOG = (
    "\b\nExit codes:\n"
    f"  0    success\n"
    f"  {EXIT_INTERNAL}    internal error (a bug: please report it with --debug output)\n"
    f"  {EXIT_USAGE}    usage error (bad option or argument)\n"
    f"  {EXIT_INPUT}    input error: missing file, a folder (detect), not a video, no video stream,\n"
    f"       truncated or corrupted video, fewer than 2 frames\n"
    f"  {EXIT_OUTPUT}    output error: output exists (without --overwrite), output equals input,\n"
    f"       output folder missing or not writable, disk full, codec unsupported\n"
    f"  {EXIT_MODEL}    model error: weights missing, truncated or wrong\n"
    f"  {EXIT_SOME_FAILED}    a folder run: one or more files failed (see the summary and\n"
    f"       OUT/retime-manifest.json); a chunked run: chunks failed or are not done\n"
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
#: fix-drops and upsample take a file or a folder of them
InPathOrDir = Annotated[Path, typer.Argument(
    metavar="IN", show_default=False,
    help="Input video file, a folder of them (then OUT is a folder), or - for stdin (any demuxable stream, e.g. "
         "y4m; spooled to a temporary file in $TMPDIR first, since retime reads its input twice; a y4m stream "
         "carries no audio or metadata, so the output has none).")]
JobsOpt = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", metavar="N", min=1, show_default=False,
    help="Folders: videos processed at once; with --chunk-seconds: chunks at once (local: worker processes, default "
         "1; ray: tasks in flight, default the cluster's CPUs).")]


class Executor(str, Enum):
    local = "local"
    ray = "ray"


ChunkSecondsOpt = Annotated[Optional[float], typer.Option(
    "--chunk-seconds", metavar="S", show_default=False,
    help="One file in chunks of about S seconds, cut at scene cuts or keyframes, rendered --jobs at a time and "
         "joined (same output; docs/scale-out.md). Default: no chunks.")]
ExecutorOpt = Annotated[Executor, typer.Option(
    "--executor", help="Where folders' files and chunks run: local (a process pool here) or ray (a Ray cluster: "
                       "--ray-address or $RAY_ADDRESS; pip install 'retime[ray]').")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", metavar="HOST:PORT", envvar="RAY_ADDRESS", show_default=False,
    help="The Ray cluster for --executor ray (also $RAY_ADDRESS; default: a local Ray).")]
GpusPerTaskOpt = Annotated[Optional[float], typer.Option(
    "--gpus-per-task", metavar="G", min=0, show_default=False,
    help="--executor ray: GPUs each task asks for (default 1 when the cluster has GPUs, else 0).")]
MaxTriesOpt = Annotated[int, typer.Option(
    "--max-tries", metavar="N", min=1,
    help="Runs of a chunk (or a folder's file) whose worker dies or fails unexpectedly before it counts as failed.")]
GlobOpt = Annotated[Optional[list[str]], typer.Option(
    "--glob", metavar="PATTERN", show_default=False,
    help="Folders: which files are videos (repeatable; default the common video extensions).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Folders: also the videos in sub-folders.")]
OutPath = Annotated[Path, typer.Argument(
    metavar="OUT", show_default=False,
    help="Output video file (its extension picks the container), or - for stdout: NUT with lossless FFV1 (or "
         "--codec), sent when the run is complete (nothing on failure); audio, subtitles and tags are copied as "
         "far as NUT holds them.")]
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
