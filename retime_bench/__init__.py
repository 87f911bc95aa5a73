"""``retime bench``: measure retime against the truth and against its peers, with numbers it really measured.

- :mod:`retime_bench.quality`: rebuild known frames (videos with every other frame dropped, image triplets) and
  score PSNR / SSIM next to the plain average, FFmpeg's minterpolate and the reference Practical-RIFE;
- :mod:`retime_bench.dropfix`: insert duplicates at known positions, run the real ``fix-drops``, score detection,
  repaired frames and untouched frames;
- :mod:`retime_bench.speed`: frames per second of the real commands and their floor, model time per frame against
  the reference, peak memory per run;
- :mod:`retime_bench.run`: one input, all tasks, one JSON document; :mod:`retime_bench.suite`: the set of inputs
  behind ``make bench`` and ``docs/benchmarks.md``; :mod:`retime_bench.report`: the tables.

A peer that cannot run on this machine is reported with the reason, never with an estimate.
"""

from typing import Any

__all__ = ["SCHEMA", "TASKS", "average_frame", "bench", "psnr", "ssim"]

_LAZY = {"average_frame": "metrics", "psnr": "metrics", "ssim": "metrics", "SCHEMA": "run", "TASKS": "run",
         "bench": "run"}


def __getattr__(name: str) -> Any:
    """The package's names, imported on first use: the measurement worker (``retime_bench.worker``) imports this
    package too, and must not carry scikit-image and SciPy (~90 MB) into the peak memory it measures."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"retime_bench.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
