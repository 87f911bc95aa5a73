"""``retime bench``: a Typer app whose command retime's CLI mounts (``add_typer``) from the ``retime.commands``
entry point, so the core never imports the benchmark.

Errors go through the core CLI's one exit point (:func:`retime.cli.exit_point`), so they end as one line and a
documented exit code like every other command. Tables go to stdout, progress lines to stderr (``--quiet``
silences them).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime.cli import EPILOG, Device, exit_point
from retime.errors import OutputError, UsageError

__all__ = ["app"]


class Task(str, Enum):
    quality = "quality"
    dropfix = "dropfix"
    gaps = "gaps"
    cadence = "cadence"
    speed = "speed"
    all = "all"


def _write_json(path: Path, data: dict) -> None:
    """Strict JSON (no NaN/Infinity) to ``path``, atomically."""
    tmp = path.with_name(f".{path.name}.retime-tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from None


def _log_to_stderr(quiet: bool) -> None:
    """Progress lines of the benchmark's modules (``logging`` records under ``retime_bench``) to stderr."""
    logger = logging.getLogger("retime_bench")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("retime bench: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


app = typer.Typer()


@app.command("bench", epilog=EPILOG)
@exit_point
def bench_cmd(
    source: Annotated[Path, typer.Argument(
        metavar="CLIP", show_default=False,
        help="A video, an image-triplet folder (frame10/frame10i11/frame11.png, frame_00/frame_01_gt/"
             "frame_02.png, frame0/1/2.png, im1/2/3.png) or a folder of them.")],
    task: Annotated[Task, typer.Option("--task", help="What to measure.")] = Task.all,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="FILE",
                                                     help="Also write every number as JSON.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(
        "--max-frames", metavar="N", min=3,
        help="Use the first N frames of the video (triplet folders: the first N triplets). Default: all.")] = None,
    crf: Annotated[list[str], typer.Option(
        "--crf", metavar="CRF|lossless",
        help="Encoding of the damaged dropfix and gaps inputs: an x264 CRF or 'lossless' (FFV1); repeat for "
             "several.")
    ] = ["23"],  # noqa: B006 (Typer needs a list default; it is never mutated)
    seed: Annotated[int, typer.Option("--seed", help="Seed of the duplicate and deleted positions (dropfix, gaps, "
                                                     "speed).")] = 0,
    device: Annotated[Device, typer.Option("--device", help="Where retime's model runs.")] = Device.auto,
    reference: Annotated[bool, typer.Option("--reference/--no-reference",
                                            help="Also run the reference Practical-RIFE.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
) -> None:
    """Measure interpolation quality (PSNR/SSIM against true frames, next to the plain average, ffmpeg's
    minterpolate and the reference Practical-RIFE), drop repair (detection precision/recall, repaired and
    untouched frames), timestamp-gap repair (gap precision/recall, filled and kept frames, duration), cadence repair (each --cadence
    mode against the truth of a virtual camera) and speed
    (frames per second, model ms per frame, peak memory) on one input."""
    if importlib.util.find_spec("skimage") is None:
        raise UsageError("retime bench needs the bench extra: pip install 'retime[bench]'")
    from rich.console import Console

    from retime_bench import report
    from retime_bench.run import TASKS, bench, parse_crf

    _log_to_stderr(quiet)
    crfs = [parse_crf(c) for c in crf]
    tasks = TASKS if task is Task.all else (task.value,)
    doc = bench(source, tasks=tasks, max_frames=max_frames, crfs=crfs, seed=seed, device=device.value,
                reference=reference)
    if json_out is not None:
        _write_json(json_out, doc)
    out = Console(highlight=False)
    if not out.is_terminal:  # a file or a pipe: room for the wide tables instead of 80 columns
        out = Console(highlight=False, width=200)
    out.print("\n".join(report.machine_lines(doc["machine"])))
    for table in report.result_tables(doc):
        out.print(report.to_rich(table))
    for name, reason in doc["not_applicable"].items():
        out.print(f"{name}: not applicable ({reason})")
