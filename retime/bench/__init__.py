"""``retime bench``: measure retime against the truth and against its peers, with numbers it really measured.

- :mod:`retime.bench.quality`: rebuild known frames (videos with every other frame dropped, image triplets) and
  score PSNR / SSIM next to the plain average, FFmpeg's minterpolate and the reference Practical-RIFE;
- :mod:`retime.bench.dropfix`: insert duplicates at known positions, run the real ``fix-drops``, score detection,
  repaired frames and untouched frames;
- :mod:`retime.bench.speed`: frames per second of the real commands and their floor, model time per frame against
  the reference, peak memory per run;
- :mod:`retime.bench.run`: one input, all tasks, one JSON document; :mod:`retime.bench.suite`: the set of inputs
  behind ``make bench`` and ``docs/benchmarks.md``; :mod:`retime.bench.report`: the tables.

A peer that cannot run on this machine is reported with the reason, never with an estimate.
"""

from retime.bench.metrics import average_frame, psnr, ssim
from retime.bench.run import SCHEMA, TASKS, bench

__all__ = ["SCHEMA", "TASKS", "average_frame", "bench", "psnr", "ssim"]
