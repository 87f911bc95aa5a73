"""Time each model setting per synthesized frame on one frame pair, interleaved so that ratios measured in one run
hold on a machine whose speed drifts (median of N rounds; round 0 warms up and is not counted).

Usage: python scripts/time_models.py [--clip bigbuckbunny.mp4] [--rounds 5] [--configs 4.2x,4.6,4.6-ens,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from measure_models import CLIPS, CONFIGS
from retime_bench.clipio import iter_video_frames
from retime.interpolate import Interpolator
from retime.interpolate.engine import choose_device


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="bigbuckbunny.mp4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default="4.2x,4.2x-ens,4.6,4.6-ens,4.6-s0.5,4.6-ens-s0.5")
    args = parser.parse_args()
    frames = [rgb for _, rgb in iter_video_frames(CLIPS / args.clip, 42)]
    a, b = frames[40], frames[41]
    configs = args.configs.split(",")
    engines = {m: Interpolator(device="cpu", model=m) for m in {CONFIGS[c][0] for c in configs}}
    times: dict[str, list[float]] = {c: [] for c in configs}
    for rnd in range(args.rounds + 1):
        for c in configs:
            model, scale, ensemble, flips = CONFIGS[c]
            started = time.perf_counter()
            engines[model].interpolate(a, b, [0.5], scale=scale, ensemble=ensemble, flips=flips)
            if rnd:
                times[c].append(time.perf_counter() - started)
    _, conv = choose_device("cpu")
    print(f"{args.clip} {a.shape[1]}x{a.shape[0]}, {torch.get_num_threads()} threads, CPU "
          f"{torch.backends.cpu.get_cpu_capability()}, convolutions in {conv or torch.float32}")
    base = statistics.median(times[configs[0]])
    for c in configs:
        med = statistics.median(times[c])
        print(f"{c:14s} median {1000 * med:8.1f} ms  best {1000 * min(times[c]):8.1f} ms  "
              f"ratio to {configs[0]} {med / base:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
