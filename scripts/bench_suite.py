"""``make bench`` (``python scripts/bench_suite.py --out docs/benchmarks.md``): the fixed set of inputs behind
``docs/benchmarks.md``. Repository tooling, not part of the package: it needs a checkout's assets.

The PyPI sample clips (``assets/clips``, fetched by ``make clips``) and, when the shared data folder exists beside
the repository (``../shared/data``), the Middlebury "other" and UCF101 triplets. Frame counts are capped so that the
whole suite stays within about a quarter of an hour on two CPU cores; the caps are part of the document, next to
each number. One model is loaded once and shared by every task.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retime_bench import report
from retime_bench.cadence import texture_label
from retime_bench.machine import machine_info
from retime_bench.run import SCHEMA, bench
from retime_bench.speed import STANDARD_SIZES

__all__ = ["SuiteItem", "default_items", "run_suite", "render_markdown", "SHARED_DATA"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder, beside the repository.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CLIPS = REPO_ROOT / "assets" / "clips"

log = logging.getLogger("retime_bench.suite")


@dataclass(frozen=True)
class SuiteItem:
    """One input and what to run on it. ``max_frames`` caps frames (videos) or triplets (folders)."""

    source: Path
    tasks: tuple[str, ...]
    max_frames: int | None
    crfs: tuple[int | None, ...] = (23,)
    #: sizes the model alone is timed at (``None``: the clip's); empty: the commands only
    speed_sizes: tuple = ()
    speed_repeats: int = 2


def default_items(data: Path = SHARED_DATA, clips: Path = CLIPS) -> list[SuiteItem]:
    """The suite: what runs on which input, with its frame caps (docs/benchmarks.md lists them)."""
    items = [
        # 640x272, 25 fps: the main clip. All four encodings of the protocol; the model timed at the standard sizes.
        SuiteItem(clips / "bikes.mp4", ("quality",), 21),
        SuiteItem(clips / "bikes.mp4", ("dropfix",), 120, crfs=(None, 18, 23, 30)),
        SuiteItem(clips / "bikes.mp4", ("speed",), 30, speed_sizes=STANDARD_SIZES, speed_repeats=5),
        # 1280x720, 25 fps, with audio: few frames, each is expensive on a CPU.
        SuiteItem(clips / "bigbuckbunny.mp4", ("quality",), 9),
        SuiteItem(clips / "bigbuckbunny.mp4", ("dropfix",), 40),
        # The whole clip (132 frames): x264's lookahead (40 frames at --preset medium) fills only after ~50 output
        # frames, so a shorter run under-reports the peak memory of upsample at 720p (the memory target).
        SuiteItem(clips / "bigbuckbunny.mp4", ("speed",), None),
        # 176x144, 29.97 fps: small and quick, the whole clip (120 frames).
        SuiteItem(clips / "carphone_pristine.mp4", ("quality", "dropfix"), None, crfs=(None, 23)),
        # Timestamp gaps: lossless and CRF 18/23 at 640x272 and at 29.97 fps (1 ms rounding in Matroska),
        # lossless with audio at 720p; about 5 % of the frames deleted, each filled one costs a model call.
        SuiteItem(clips / "bikes.mp4", ("gaps",), 120, crfs=(None, 18, 23)),
        SuiteItem(clips / "carphone_pristine.mp4", ("gaps",), None, crfs=(None, 23)),
        SuiteItem(clips / "bigbuckbunny.mp4", ("gaps",), 40, crfs=(None,)),
        SuiteItem(clips / "carphone_pristine.mp4", ("speed",), None, speed_sizes=(None,), speed_repeats=2),
        # Repeat cadences (24 and 16.67 fps in 25) on a virtual camera filming a bigbuckbunny frame, 320x192.
        SuiteItem(clips / "bigbuckbunny.mp4", ("cadence",), None),
    ]
    # The same on a photograph, a texture that was never video-coded (the first Middlebury-other scene).
    photographs = sorted((data / "middlebury-other").glob("*/frame10.png"))
    if photographs:
        items.append(SuiteItem(photographs[0], ("cadence",), None))
    for name in ("middlebury-other", "ucf101-dvf"):
        if (data / name).is_dir():
            items.append(SuiteItem(data / name, ("quality",), None))
    return items


def run_suite(items: list[SuiteItem] | None = None, *, device: str = "auto", reference: bool = True,
              interpolator=None) -> dict[str, Any]:
    """Run every item; a failure is recorded with its message (and the suite goes on), never hidden.

    Returns:
        ``{"schema", "machine", "items": [bench documents or {"input", "tasks", "error"}], "seconds"}``.
    """
    started = time.perf_counter()
    machine = machine_info()  # before the work: its date and load average describe the start of the run
    items = default_items() if items is None else items
    docs = []
    for item in items:
        if not item.source.exists():
            docs.append({"input": str(item.source), "tasks": list(item.tasks),
                         "error": f"missing {item.source} (make clips / the shared data folder)"})
            continue
        for task in item.tasks:
            log.info(f"suite: {task} on {item.source.name}")
            try:
                docs.append(bench(item.source, tasks=(task,), max_frames=item.max_frames, crfs=item.crfs,
                                  device=device, reference=reference, speed_sizes=list(item.speed_sizes),
                                  speed_repeats=item.speed_repeats, interpolator=interpolator))
            except Exception as exc:  # recorded in the document: a failed measurement is a result too
                docs.append({"input": str(item.source), "tasks": [task], "error": f"{type(exc).__name__}: {exc}"})
    return {"schema": SCHEMA + "-suite", "machine": machine, "items": docs,
            "load_average_1min_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "seconds": round(time.perf_counter() - started, 1)}


def render_markdown(suite: dict[str, Any]) -> str:
    """docs/benchmarks.md from a suite document."""
    docs = [d for d in suite["items"] if "error" not in d]
    quality = [d["quality"] for d in docs if d.get("quality")]
    dropfix = [r for d in docs for r in (d.get("dropfix") or [])]
    gaps = [r for d in docs for r in (d.get("gaps") or [])]
    cadences = [r for d in docs for r in (d.get("cadence") or [])]
    speed = [d["speed"] for d in docs if d.get("speed")]
    m = suite["machine"]
    out = ["# Benchmarks", "",
           "Generated by `make bench` (`python scripts/bench_suite.py --out docs/benchmarks.md`); do not edit by hand. Every "
           "number below was measured in this run on this machine; a peer that could not run says why instead. "
           "The protocol: PSNR and SSIM over RGB, 8-bit "
           "(scikit-image, data_range=255), means over frames.", "",
           "## Machine", "", *report.machine_lines(m),
           f"- suite wall time: {suite['seconds']:.0f} s; 1-minute load average at the end: "
           f"{suite.get('load_average_1min_end')}", ""]
    out += ["## Inputs and caps", "",
            "| input | task | frames (triplets) used | dropfix / gaps encodings |", "|---|---|---|---|"]
    for d in suite["items"]:
        name = texture_label(Path(d["input"]))  # a file's name; a photograph's with its scene's folder
        if "error" in d:
            out.append(f"| {name} | {', '.join(d['tasks'])} | failed: {d['error']} | |")
            continue
        s = d["settings"]
        out.append(f"| {name} | {', '.join(s['tasks'])} | {s['max_frames'] or 'all'} | "
                   f"{', '.join(str(c) for c in s['crf']) if {'dropfix', 'gaps'} & set(s['tasks']) else ''} |")
    out.append("")
    tables = []
    if quality:
        tables += report.quality_tables(quality)
    if dropfix:
        tables.append(report.dropfix_table(dropfix))
    if gaps:
        tables.append(report.gaps_table(gaps))
    if cadences:
        tables.append(report.cadence_table(cadences))
    if speed:
        tables += report.speed_tables(speed)
    out += ["## Results", ""] + [report.to_markdown(t) for t in tables]
    out += ["## fix-drops against its floor on long clips", "",
            "The commands table above runs fix-drops on the first frames of each clip, where loading the model "
            "dominates. The issue's ratio (1-5 % repeats, 60 s at 640x360 and 20 s at 1280x720, each preset) is "
            "measured by `python scripts/measure_fixdrops.py [--quality fast]` (about ten minutes, so not part of this "
            "suite), with where the time goes: [performance.md](performance.md), \"fix-drops against its floor\".", ""]
    out += ["## Scale-out (folders and chunked long videos, 1 and 2 workers, the model for k machines)", "",
            "Measured by `python scripts/measure_scaleout.py` (several minutes of model work per run, so not part of "
            "this suite): the wall times, the fixed costs (plan, worker start-up, join) and the model checked against "
            "the 2-worker runs are in [scale-out.md](scale-out.md), \"Measured on the development machine\".", ""]
    out += ["## Reproduce", "", "```", "make bench    # this page: python scripts/bench_suite.py --out docs/benchmarks.md",
            "retime bench CLIP --task all --max-frames 21 --json out.json    # one clip",
            "retime bench ../shared/data/middlebury-other --task quality     # a folder of image triplets", "```",
            ""]
    return "\n".join(out)


def write_suite(out: Path, suite: dict[str, Any], json_path: Path | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_text(render_markdown(suite))
    os.replace(tmp, out)
    if json_path is not None:
        json_path.write_text(json.dumps(suite, indent=1, allow_nan=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="the Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="retime bench: %(message)s")
    suite = run_suite(device=args.device)
    write_suite(args.out, suite, args.json)
    log.info(f"wrote {args.out} in {suite['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
