"""Speed and memory: output frames per second of the real commands, model time per frame, against their floors.

Every measurement runs in its own Python process (:mod:`retime_bench.worker`), so its peak resident memory
(``VmHWM``) is its own and one run's caches cannot flatter the next:

- ``upsample --factor 2`` and ``fix-drops`` on the first ``max_frames`` frames of the clip (for fix-drops, with
  about 5 % duplicates, encoded at the chosen CRF), with retime's default output encoding; output frames per second
  and wall time of the library call (model loading included, interpreter start-up not);
- the floor: a plain decode + re-encode of the same fix-drops input with the same encoder settings, and fix-drops'
  time over it (the protocol wants this close to 1 at 1-5 % drops);
- the model alone: milliseconds per synthesized frame at the clip's size, 640x360 and 1280x720, one t per pair and
  four t per pair, for retime and the reference implementation in the same process, interleaved (the ratio
  retime / reference is the speed-up; the target is <= 0.4).
"""

from __future__ import annotations

import logging

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from retime_bench.clipio import iter_video_frames, write_video
from retime_bench.dropfix import damage_positions, write_damaged
from retime_bench.peers import REFERENCE_SOURCE
from retime.errors import InputError
from retime.media import probe

log = logging.getLogger(__name__)

__all__ = ["STANDARD_SIZES", "run_worker", "speed"]

#: Frame sizes at which the model is timed besides the clip's own (width, height in pixels).
STANDARD_SIZES = ((640, 360), (1280, 720))
#: Timed calls per measurement after one warm-up (the median is reported).
REPEATS = 3
#: t values per pair: one (fix-drops' usual case, 2x upsampling) and four (5x upsampling, longer runs).
TS_PER_PAIR = (1, 4)




def run_worker(job: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run one :mod:`retime_bench.worker` job in a fresh interpreter; its JSON result.

    Raises:
        RuntimeError: the worker failed (its last lines of stderr in the message).
    """
    proc = subprocess.run([sys.executable, "-m", "retime_bench.worker", json.dumps(job)], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {job['job']} failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-600:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def model_timing(clip: Path, sizes: list[tuple[int, int] | None], *, repeats: int = REPEATS,
                 reference: bool = True, reference_reason: str | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Model-only milliseconds per synthesized frame at each size (``None``: the clip's own), one worker per size.

    Returns:
        One entry per size: ``{"size": [w, h], "retime_ms": {"1": ms, "4": ms}, "reference_ms": {...} | reason,
        "ratio": {"1": retime/reference, "4": ...}, "reference_alone_ms", "ratio_alone", "peak_rss_mib", "threads",
        "runs_ms", "repeats"}`` (medians), and the same with ``_best`` (the fastest run: the least disturbed by
        other work on a shared machine). ``reference_ms`` is timed in retime's process, interleaved with retime
        (so with retime's allocator setting); ``reference_alone_ms`` in a process of its own, as shipped.
    """
    engines = ["retime"] + (["reference"] if reference else [])
    out = []
    for size in sizes:
        label = "clip size" if size is None else f"{size[0]}x{size[1]}"
        log.info(f"speed {clip.name}: model timing at {label} ({', '.join(engines)}; {repeats} repeats)")
        r = run_worker({"job": "model", "frames": [str(clip), 0, 1], "size": list(size) if size else None,
                        "ts": list(TS_PER_PAIR), "repeats": repeats, "engines": engines, "device": device})
        ms, best = r["ms_per_frame"], r["ms_per_frame_best"]
        entry: dict[str, Any] = {
            "size": r["size"],
            "retime_ms": {str(n): ms[f"retime/{n}"] for n in TS_PER_PAIR},
            "retime_ms_best": {str(n): best[f"retime/{n}"] for n in TS_PER_PAIR},
            "runs_ms": r["ms_per_frame_all"], "repeats": repeats,
            "peak_rss_mib": r["peak_rss_mib"], "threads": r["threads"],
        }
        if reference:
            entry["reference_ms"] = {str(n): ms[f"reference/{n}"] for n in TS_PER_PAIR}
            entry["reference_ms_best"] = {str(n): best[f"reference/{n}"] for n in TS_PER_PAIR}
            entry["ratio"] = {str(n): _ratio(ms[f"retime/{n}"], ms[f"reference/{n}"]) for n in TS_PER_PAIR}
            entry["ratio_best"] = {str(n): _ratio(best[f"retime/{n}"], best[f"reference/{n}"]) for n in TS_PER_PAIR}
            # The reference as shipped: its own process, without the allocator setting that retime sets up
            # process-wide (retime._process.configure_process), which also speeds up the reference above.
            log.info(f"speed {clip.name}: model timing at {label} (reference alone, {repeats} repeats)")
            alone = run_worker({"job": "model", "frames": [str(clip), 0, 1], "size": list(size) if size else None,
                                "ts": list(TS_PER_PAIR), "repeats": repeats, "engines": ["reference"],
                                "device": device})
            entry["reference_alone_ms"] = {str(n): alone["ms_per_frame"][f"reference/{n}"] for n in TS_PER_PAIR}
            entry["reference_alone_ms_best"] = {str(n): alone["ms_per_frame_best"][f"reference/{n}"]
                                                for n in TS_PER_PAIR}
            entry["ratio_alone"] = {str(n): _ratio(ms[f"retime/{n}"], entry["reference_alone_ms"][str(n)])
                                    for n in TS_PER_PAIR}
            entry["ratio_alone_best"] = {str(n): _ratio(best[f"retime/{n}"], entry["reference_alone_ms_best"][str(n)])
                                         for n in TS_PER_PAIR}
        else:
            reason = reference_reason or "not run"
            for key in ("reference_ms", "reference_ms_best", "ratio", "ratio_best", "reference_alone_ms",
                        "reference_alone_ms_best", "ratio_alone", "ratio_alone_best"):
                entry[key] = reason
        out.append(entry)
    return out


def speed(clip: Path, *, max_frames: int | None = 50, crf: int | None = 23, seed: int = 0,
          model_sizes: list[tuple[int, int] | None] | None = None, repeats: int = REPEATS,
          reference: bool | None = None, device: str = "auto", workdir: Path | None = None) -> dict[str, Any]:
    """The speed section of the bench JSON for one clip.

    Args:
        max_frames: frames of the clip to run the commands on (``None``: all).
        crf: CRF of the damaged fix-drops input (``None``: lossless FFV1 input and output).
        model_sizes: sizes to time the model at (``None`` entries: the clip's size); default: the clip's size,
            640x360 and 1280x720. An empty list skips model timing.
        reference: time the reference too (``None``: when its source is present; ``False``: not run).
        device: for the commands and the model (``auto``: CUDA when present).

    Returns:
        ``{"frames", "upsample": {...}, "fix_drops": {...}, "reencode_floor": {...}, "fix_drops_over_floor",
        "model": [...], "threads"}``; times in seconds, rates in output frames per second, memory in MiB.
    """
    reason = None
    if reference is False:
        reason = "not run (--no-reference)"
    elif not REFERENCE_SOURCE.is_file():
        reference, reason = False, f"not available ({REFERENCE_SOURCE} missing: run `make reference` in a checkout)"
    reference = bool(reference is None or reference) and reason is None
    sizes = [None, *STANDARD_SIZES] if model_sizes is None else model_sizes
    info = probe(clip)
    model_device = "cpu" if device == "auto" else device
    if device == "auto":
        import torch

        model_device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict[str, Any] = {"source": str(clip), "size": [info.width, info.height], "device": model_device}
    with tempfile.TemporaryDirectory(prefix="retime-bench-", dir=workdir) as tmp:
        tmp = Path(tmp)
        source = tmp / "source.mp4"
        n = write_video((f for f, _ in iter_video_frames(clip, max_frames)), source, rate=info.frame_rate,
                        codec="libx264", crf=18)
        if n < 3:
            raise InputError(f"{clip}: the speed task needs at least 3 frames")
        result["frames"] = n
        lossless = crf is None
        damaged = tmp / ("damaged.mkv" if lossless else "damaged.mp4")
        positions = damage_positions(n, seed=seed)
        write_damaged(clip, damaged, positions, n, crf=crf)
        codec = "ffv1" if lossless else None
        ext = ".mkv" if lossless else ".mp4"
        result["fix_drops_input"] = {"encoding": "ffv1 (lossless)" if lossless else f"libx264 crf {crf}",
                                     "duplicates": len(positions)}
        log.info(f"speed {clip.name}: upsample --factor 2 on {n} frames")
        result["upsample"] = run_worker({"job": "upsample", "input": str(source), "output": str(tmp / "up.mp4"),
                                         "device": device})
        log.info(f"speed {clip.name}: fix-drops on {n} frames ({len(positions)} duplicates)")
        result["fix_drops"] = run_worker({"job": "fix_drops", "input": str(damaged), "codec": codec,
                                          "output": str(tmp / f"fixed{ext}"), "device": device})
        log.info(f"speed {clip.name}: decode + re-encode floor")
        result["reencode_floor"] = run_worker({"job": "reencode", "input": str(damaged), "codec": codec,
                                               "output": str(tmp / f"plain{ext}")})
        result["fix_drops_over_floor"] = _ratio(result["fix_drops"]["seconds"], result["reencode_floor"]["seconds"])
        result["model"] = model_timing(clip, sizes, repeats=repeats, reference=reference, reference_reason=reason,
                                       device=model_device) if sizes else []
    result["threads"] = result["upsample"].get("threads")
    return result
