"""``retime bench``: run the quality, drop-repair, gap-repair, cadence and speed tasks on one input and gather one JSON
document.

Schema (``"schema": "retime-bench/1"``)::

    {"schema", "machine": {cpu, cores, torch, torch_threads, gpu, ..., date, load_average_1min},
     "input": path, "kind": "video" | "triplets", "settings": {tasks, max_frames, crf, seed, device},
     "quality": {...} | null, "dropfix": [{...}, ...] | null, "gaps": [{...}, ...] | null, "cadence": [{...}, ...] | null,
     "speed": {...} | null,
     "not_applicable": {task: reason}, "load_average_1min_end", "seconds"}

Numbers are JSON numbers, except an infinite PSNR, which is the string ``"inf"``; a method that did not run has
``{"available": false, "reason": "..."}`` instead of numbers. The sections are described in
:mod:`retime_bench.quality`, :mod:`retime_bench.dropfix`, :mod:`retime_bench.gaps`, :mod:`retime_bench.cadence` and :mod:`retime_bench.speed`.
"""

from __future__ import annotations


import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retime_bench.machine import machine_info
from retime.errors import InputError, UsageError


__all__ = ["SCHEMA", "TASKS", "bench", "parse_crf"]

SCHEMA = "retime-bench/1"
TASKS = ("quality", "dropfix", "gaps", "cadence", "speed")




def parse_crf(value: str | int | None) -> int | None:
    """``"lossless"`` → ``None`` (FFV1), else an x264 CRF in 0..51.

    Raises:
        UsageError: anything else.
    """
    if value is None or str(value).strip().lower() in ("lossless", "ffv1"):
        return None
    try:
        crf = int(str(value))
    except ValueError:
        raise UsageError(f"--crf must be an integer 0..51 or 'lossless', got {value!r}") from None
    if not 0 <= crf <= 51:
        raise UsageError(f"--crf must be in 0..51 or 'lossless', got {crf}")
    return crf


def bench(source: str | Path, *, tasks: Sequence[str] = TASKS, max_frames: int | None = None,
          crfs: Sequence[int | None] = (23,), seed: int = 0, device: str = "auto", reference: bool = True,
          speed_sizes: list | None = None, speed_repeats: int | None = None, interpolator=None) -> dict[str, Any]:
    """Run the given tasks on a video or an image-triplet folder and return the bench document (see module doc).

    Args:
        source: a video file, a triplet folder, or a folder of triplet folders (quality only), or a still image
            (cadence only: the virtual camera films it).
        tasks: any of ``quality``, ``dropfix``, ``gaps``, ``speed``.
        max_frames: frames of a video to use (triplets: the number of triplets); ``None``: all.
        crfs: encodings of the damaged dropfix and gaps inputs: x264 CRFs, ``None`` for lossless FFV1.
        device: ``auto``, ``cpu`` or ``cuda`` for retime's model (the reference always runs on the CPU).
        reference: also run the reference implementation (when ``make reference`` fetched it).
        interpolator: a ready :class:`~retime.interpolate.Interpolator` to reuse (default: built here, once).

    Raises:
        InputError: the source does not exist or is neither a video nor a triplet folder.
        UsageError: an unknown task.
    """
    from retime_bench import quality as q
    from retime_bench.cadence import IMAGE_SUFFIXES
    from retime_bench.peers import load_reference

    started = time.perf_counter()
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UsageError(f"unknown bench task(s) {unknown}: choose from {', '.join(TASKS)} or all")
    kind = "triplets" if q.is_triplet_source(source) else "video"
    if source.suffix.lower() in IMAGE_SUFFIXES:  # a photograph: only the virtual camera of the cadence task films it
        kind = "image"
    doc: dict[str, Any] = {
        "schema": SCHEMA, "machine": machine_info(), "input": str(source), "kind": kind,
        "settings": {"tasks": list(tasks), "max_frames": max_frames, "seed": seed, "device": device,
                     "crf": ["lossless" if c is None else c for c in crfs]},
        "quality": None, "dropfix": None, "gaps": None, "cadence": None, "speed": None, "not_applicable": {},
    }
    if "quality" in tasks and kind != "image":
        ref, why = load_reference() if reference else (None, "not run (--no-reference)")
        # as shipped unless an interpolator is injected: each model and preset beside the reference
        e46, e42, extra = q.model_columns(device) if interpolator is None else (None, None, None)
        if kind == "triplets":
            doc["quality"] = q.quality_triplets(source, interpolator=interpolator or e46, reference=ref,
                                                reference_reason=why, max_triplets=max_frames, extra=extra,
                                                settings=None if interpolator else {"ensemble": True})
        else:
            engines = None if interpolator else {"rife-4.6": e46, "rife-4.2x": e42}
            doc["quality"] = q.quality_video(source, interpolator=interpolator, reference=ref, reference_reason=why,
                                             max_frames=max_frames, extra=extra, engines=engines)
    for task in ("dropfix", "gaps", "cadence", "speed"):
        if task in tasks and kind == "triplets":
            doc["not_applicable"][task] = "image triplets have no video to repair or to time"
    for task in ("quality", "dropfix", "gaps", "speed"):
        if task in tasks and kind == "image":
            doc["not_applicable"][task] = "a still image has no frames to rebuild, repair or time"
    if "dropfix" in tasks and kind == "video":
        from retime_bench.dropfix import dropfix

        doc["dropfix"] = [dropfix(source, crf=crf, max_frames=max_frames, seed=seed, interpolator=interpolator)
                          for crf in crfs]
    if "gaps" in tasks and kind == "video":
        from retime_bench.gaps import gaps

        doc["gaps"] = [gaps(source, crf=crf, max_frames=max_frames, seed=seed, interpolator=interpolator)
                       for crf in crfs]
    if "cadence" in tasks and kind in ("video", "image"):
        from retime_bench.cadence import cadence

        doc["cadence"] = cadence(source, interpolator=interpolator)
    if "speed" in tasks and kind == "video":
        from retime_bench.speed import REPEATS, speed

        doc["speed"] = speed(source, max_frames=max_frames, crf=crfs[0] if crfs else 23, seed=seed,
                             model_sizes=speed_sizes, repeats=speed_repeats or REPEATS,
                             reference=None if reference else False, device=device)
    doc["load_average_1min_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    doc["seconds"] = round(time.perf_counter() - started, 1)
    return doc
