"""Measure scale-out on this machine (docs/scale-out.md has the protocol and the results): the wall time of a folder
and of a chunked long video with 1 and 2 local workers, and a model of the time on k machines checked against them.

Inputs, made from assets/clips/carphone_pristine.mp4 (176x144, 29.97 fps, 120 frames; ``make clips``): a folder of
four videos of two loops each (240 frames), and a long video of ``--loops`` loops (each loop start is a scene cut),
H.264 in MP4 with a keyframe every 2 s. Both are upsampled 2x with the real model (``--quality fast``, CPU,
H.264 output), so every other output frame is synthesized.

Runs, one after the other: the folder with ``--jobs 1`` and ``--jobs 2``; the long video unchunked, in chunks of
``--chunk-seconds`` with ``--jobs 1`` and with ``--jobs 2``; chunk 0 once more in this process with one PyTorch
thread (what each of two workers gets on two cores).

The model of a chunked run on k workers: ``T(k) = T_plan + T_start + makespan(chunk times, k) + T_join``, where the
makespan is the pool's own schedule (each free worker takes the next chunk in order), ``T_plan`` and ``T_join`` come
from the report and ``T_start`` (a worker process's start: spawn, imports, the model's load) is the 1-worker chunk
phase less its chunks' seconds. A folder is the same without plan and join, each file a task. On k machines
like this one every task keeps its 1-worker time; two workers on this machine's two cores each run with one
thread, so the check against the 2-worker runs scales the task times by the measured 1-thread/2-thread ratio.

Usage:
    .venv/bin/python scripts/measure_scaleout.py [--loops 10] [--chunk-seconds 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retime.batch import run_folder  # noqa: E402
from retime.chunks import run_chunked  # noqa: E402
from retime.executor import ExecutorSettings  # noqa: E402
from retime.pipeline import ModelSettings, upsample  # noqa: E402

CLIP = ROOT / "assets" / "clips" / "carphone_pristine.mp4"
MODEL = ModelSettings(quality="fast")
OPTIONS = dict(factor=2, model=MODEL, device="cpu")


def loop_clip(source: Path, target: Path, loops: int) -> int:
    """Write ``loops`` copies of ``source``'s frames one after the other (H.264, keyframe every 2 s); the frame
    count."""
    with av.open(str(source)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        rate = src.streams.video[0].average_rate
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast",
                                                               "x264-params": f"keyint={round(2 * rate)}"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.time_base = stream.time_base = 1 / rate
        n = 0
        for _ in range(loops):
            for rgb in frames:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = n, 1 / rate
                out.mux(stream.encode(frame))
                n += 1
        out.mux(stream.encode(None))
    return n


def makespan(tasks: list[float], workers: int) -> float:
    """When the last of ``tasks`` (seconds, in submission order) ends on ``workers`` that each take the next one."""
    free = [0.0] * max(1, workers)
    for seconds in tasks:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.monotonic()
    value = fn(*args, **kwargs)
    return time.monotonic() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=10)
    parser.add_argument("--chunk-seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=None, help="keep the inputs and outputs here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="retime-scaleout-"))
    folder = work / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        loop_clip(CLIP, folder / f"clip{i}.mp4", 2)
    long = work / "long.mp4"
    frames = loop_clip(CLIP, long, args.loops)
    results: dict[str, object] = {"frames": frames, "loops": args.loops, "chunk_seconds": args.chunk_seconds,
                                  "cores": len(os.sched_getaffinity(0))}

    files: dict[int, list[float]] = {}
    for jobs in (1, 2):
        wall, batch = timed(run_folder, "upsample", folder, work / f"folder-out-{jobs}", jobs=jobs, **OPTIONS)
        files[jobs] = [o.seconds for o in batch.outcomes]
        results[f"folder_{jobs}"] = {"wall": round(wall, 2), "files": files[jobs]}

    wall, _ = timed(upsample, long, work / "long-plain.mp4", overwrite=True, **OPTIONS)
    results["unchunked"] = round(wall, 2)
    reports = {}
    for jobs in (1, 2):
        report = work / f"long-{jobs}.json"
        wall, _ = timed(run_chunked, "upsample", long, work / f"long-chunked-{jobs}.mp4", overwrite=True,
                        chunk_seconds=args.chunk_seconds, executor=ExecutorSettings(jobs=jobs), report=report,
                        **OPTIONS)
        reports[jobs] = json.loads(report.read_text())["chunks"]
        results[f"chunked_{jobs}"] = {"wall": round(wall, 2), **reports[jobs]}

    # chunk 0 again, here, with one PyTorch thread: each of two workers on two cores runs so
    from retime._process import configure_process
    from retime.chunks import plan_chunks, render_chunk

    configure_process(1)
    plan_chunks("upsample", long, work / "one-thread.mp4", work / "one.json", chunk_seconds=args.chunk_seconds,
                overwrite=True, **OPTIONS)
    render_chunk(work / "one.json", 0)  # the model loaded, as a warm worker has it
    (work / "one.chunks" / "chunk-00000.done.json").unlink()
    one = render_chunk(work / "one.json", 0)["seconds"]
    ratio = one / reports[1]["seconds"][0]
    results["one_thread_ratio"] = round(ratio, 3)

    one_worker = results["chunked_1"]
    chunk_times = one_worker["seconds"]
    fixed = one_worker["plan_seconds"] + one_worker["join_seconds"]
    start = max(0.0, one_worker["wall"] - fixed - sum(chunk_times))
    model = {"plan": one_worker["plan_seconds"], "join": one_worker["join_seconds"], "start": round(start, 2),
             "chunks": len(chunk_times), "mean_chunk": round(sum(chunk_times) / len(chunk_times), 2)}
    model["predicted_chunked_2_workers_here"] = round(fixed + start + makespan([t * ratio for t in chunk_times], 2), 2)
    model["k_machines"] = {k: round(fixed + start + makespan(chunk_times, k), 2) for k in (1, 2, 4, 8, 16)}
    folder_start = max(0.0, results["folder_1"]["wall"] - sum(files[1]))
    model["folder_start"] = round(folder_start, 2)
    model["predicted_folder_2_workers_here"] = round(folder_start + makespan([t * ratio for t in files[1]], 2), 2)
    model["folder_k_machines"] = {k: round(folder_start + makespan(files[1], k), 2) for k in (1, 2, 4)}
    results["model"] = model
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
