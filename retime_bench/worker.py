"""One measurement in a fresh process, so that its peak memory (``VmHWM``) and its timings are its own.

Run by :mod:`retime_bench.speed` as ``python -m retime_bench.worker '<json job>'``; prints one JSON object on its
last line of standard output. Jobs:

- ``{"job": "model", "frames": [path, index0, index1], "size": [w, h] | null, "ts": [1, 4], "repeats": R,
  "engines": ["retime", "reference"]}``: milliseconds per synthesized frame of the model alone (median and best of
  R timed calls after one warm-up, engines interleaved so that a busy machine slows both alike);
- ``{"job": "upsample", "input": path, "output": path}``: ``retime upsample --factor 2`` with default encoding
  (optional ``"codec"`` and ``"preset"``, as ``--codec`` and ``--preset``);
- ``{"job": "fix_drops", "input": path, "output": path, "codec": null | "ffv1"}``;
- ``{"job": "reencode", "input": path, "output": path, "codec": null | "ffv1"}``: decode + encode, the floor.

Every job reports ``peak_rss_mib`` (this process's VmHWM, MiB) and ``threads`` (``torch.get_num_threads()``).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from retime_bench.machine import peak_rss_mib
from retime.defaults import DEFAULTS


def _frames(path: str, i0: int, i1: int, size: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Two decoded frames of a clip, resized (bicubic, by swscale) to ``size`` = ``[w, h]`` when given."""
    from retime.media import iter_frames

    out = {}
    for decoded in iter_frames(path):
        if decoded.index in (i0, i1):
            frame = decoded.frame
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1], interpolation="BICUBIC")
            out[decoded.index] = frame.to_ndarray(format="rgb24")
        if decoded.index >= max(i0, i1):
            break
    return out[i0], out[i1]


def _model(job: dict[str, Any]) -> dict[str, Any]:
    from retime_bench.peers import ReferenceRife
    from retime.interpolate import Interpolator

    a, b = _frames(*job["frames"], job.get("size"))
    engines: dict[str, Any] = {}
    for name in job["engines"]:
        if name == "retime":
            engines[name] = Interpolator(device=job.get("device", "cpu"), model="rife-4.2x")  # the reference's weights
        elif name == "reference":
            engines[name] = ReferenceRife()
    calls = {}
    for n in job["ts"]:
        ts = [(k + 1) / (n + 1) for k in range(n)]
        for name, engine in engines.items():
            calls[(name, n)] = (engine, ts)
    times: dict[tuple[str, int], list[float]] = {key: [] for key in calls}
    for rep in range(job["repeats"] + 1):  # repetition 0 is the warm-up, not counted
        for key, (engine, ts) in calls.items():
            started = time.perf_counter()
            engine.interpolate(a, b, ts)
            if _cuda(engine):
                import torch

                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            if rep:
                times[key].append(elapsed * 1000 / len(ts))
    return {"size": [a.shape[1], a.shape[0]],
            "ms_per_frame": {f"{name}/{n}": round(statistics.median(v), 2) for (name, n), v in times.items()},
            "ms_per_frame_best": {f"{name}/{n}": round(min(v), 2) for (name, n), v in times.items()},
            "ms_per_frame_all": {f"{name}/{n}": [round(x, 2) for x in v] for (name, n), v in times.items()}}


def _cuda(engine) -> bool:
    device = getattr(engine, "device", None)
    return getattr(device, "type", None) == "cuda"


def _pipeline(job: dict[str, Any]) -> dict[str, Any]:
    from retime.media import EncodeSettings
    from retime.pipeline import fix_drops, upsample

    encode = EncodeSettings(codec=job.get("codec"), preset=job.get("preset", DEFAULTS.preset))
    started = time.perf_counter()
    if job["job"] == "upsample":
        result = upsample(job["input"], job["output"], factor=2, encode=encode, overwrite=True,
                          device=job.get("device", "auto"))
        frames, synthesized = result.frames_written, result.synthesized
    elif job["job"] == "fix_drops":
        result = fix_drops(job["input"], job["output"], encode=encode, overwrite=True,
                           device=job.get("device", "auto"))
        frames, synthesized = result.frames_written, result.synthesized
    else:
        from retime_bench.clipio import reencode  # not dropfix: its metrics would load scikit-image

        frames, synthesized = reencode(Path(job["input"]), Path(job["output"]), encode), 0
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "frames_out": frames, "synthesized": synthesized,
            "fps": round(frames / seconds, 3) if seconds > 0 else None}


def main(argv: list[str]) -> int:
    job = json.loads(argv[1])
    if job["job"] != "model" or "retime" in job["engines"]:
        # what the retime command sets up at start-up; the reference timed alone runs as shipped, without it
        from retime._process import configure_process

        configure_process()
    result = _model(job) if job["job"] == "model" else _pipeline(job)
    torch = sys.modules.get("torch")  # not imported by a plain re-encode: its memory is not charged to it
    result.update(job=job["job"], peak_rss_mib=round(peak_rss_mib(), 1),
                  threads=torch.get_num_threads() if torch is not None else None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
