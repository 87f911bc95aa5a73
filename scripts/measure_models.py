"""Score each model setting (model, flow scale, ensembling, flips) on the evaluation sets, t = 0.5, mean RGB PSNR.

The sets are those of ``retime bench``: Middlebury-other and UCF101-DVF triplets from ``../shared/data`` and the
first 25 frames of each PyPI clip (odd frames rebuilt from their even neighbours). Results are appended to a JSON
lines file and a setting already measured there is skipped, so an interrupted run resumes where it stopped.

Usage: python scripts/measure_models.py OUT.jsonl [--sets middlebury,ucf101,bikes,...] [--configs NAME,...]
       [--max-triplets N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from retime_bench.clipio import find_triplet_dirs, iter_video_frames, load_triplet
from retime_bench.metrics import psnr
from retime.interpolate import Interpolator

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CLIPS = ROOT / "assets" / "clips"

#: name -> (model, scale, ensemble, flips); flips: 1 adds the left-right mirror ("hflip"), 2 also the upside-down
#: one ("hvflip"), see retime.interpolate.engine.FLIP_DIMS
CONFIGS = {
    "4.2x": ("rife-4.2x", 1.0, False, 0),
    "4.2x-ens": ("rife-4.2x", 1.0, True, 0),
    "4.2x-s2": ("rife-4.2x", 2.0, False, 0),
    "4.6": ("rife-4.6", 1.0, False, 0),
    "4.6-ens": ("rife-4.6", 1.0, True, 0),
    "4.6-s2": ("rife-4.6", 2.0, False, 0),
    "4.6-ens-s2": ("rife-4.6", 2.0, True, 0),
    "4.6-s0.5": ("rife-4.6", 0.5, False, 0),
    "4.6-ens-s0.5": ("rife-4.6", 0.5, True, 0),
    "4.6-hflip": ("rife-4.6", 1.0, False, 1),
    "4.6-ens-hflip": ("rife-4.6", 1.0, True, 1),
    "4.6-ens-hvflip": ("rife-4.6", 1.0, True, 2),
    "4.2x-hflip": ("rife-4.2x", 1.0, False, 1),
    "4.2x-ens-hflip": ("rife-4.2x", 1.0, True, 1),
    # both models, their frames averaged in float before the 8-bit rounding (model ensembling; not a product setting)
    "avg-4.6-4.2x": ("rife-4.6+rife-4.2x", 1.0, False, 0),
    "avg-4.6-ens-4.2x-ens": ("rife-4.6+rife-4.2x", 1.0, True, 0),
    "avg-4.6-ens-4.2x-ens-hvflip": ("rife-4.6+rife-4.2x", 1.0, True, 2),
}


def _tensor(frame: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 255


def triplets(name: str, max_triplets: int | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(first, truth, last)`` RGB uint8 triplets of one set."""
    if name in ("middlebury", "ucf101"):
        folder = SHARED / ("middlebury-other" if name == "middlebury" else "ucf101-dvf")
        dirs = find_triplet_dirs(folder)[:max_triplets]
        return [(t.first, t.truth, t.last) for t in map(load_triplet, dirs)]
    frames = [rgb for _, rgb in iter_video_frames(CLIPS / f"{name}.mp4", 25)]
    return [(frames[i - 1], frames[i], frames[i + 1]) for i in range(1, len(frames) - 1, 2)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--sets", default="middlebury,ucf101,bikes,bigbuckbunny,carphone_pristine")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--max-triplets", type=int, default=None)
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        done = {(r["set"], r["config"]) for r in map(json.loads, args.out.read_text().splitlines())}
    engines: dict[str, Interpolator] = {}
    for set_name in args.sets.split(","):
        data = triplets(set_name, args.max_triplets)
        for config in args.configs.split(","):
            if (set_name, config) in done:
                continue
            model, scale, ensemble, flips = CONFIGS[config]
            models = [engines.setdefault(m, Interpolator(device="cpu", model=m)) for m in model.split("+")]
            scores, seconds = [], 0.0
            for first, truth, last in data:
                started = time.perf_counter()
                if len(models) == 1:
                    out = models[0].interpolate(first, last, [0.5], scale=scale, ensemble=ensemble, flips=flips)[0]
                else:
                    a, b = _tensor(first), _tensor(last)
                    mean = sum(e.interpolate(a, b, [0.5], scale=scale, ensemble=ensemble, flips=flips)[0]
                               for e in models) / len(models)
                    out = (mean.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
                seconds += time.perf_counter() - started
                scores.append(psnr(out, truth))
            row = {"set": set_name, "config": config, "n": len(scores), "psnr": round(float(np.mean(scores)), 3),
                   "ms_per_frame": round(1000 * seconds / len(scores), 1), "per_frame": [round(s, 3) for s in scores]}
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{set_name:18s} {config:14s} {row['psnr']:7.3f} dB  {row['ms_per_frame']:8.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
