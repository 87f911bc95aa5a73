"""How many rebuilt frames the flow-scale search needs before its choice beats the default setting (issue 18).

The `balanced` preset's search (retime.interpolate.autotune) rebuilds a few source frames i from i - 1 and i + 1
with each candidate setting and keeps the best. Its model calls are capped by the job's size (a fix-drops run
repairs few frames), so a small job can afford one or two rebuilds per setting: is a search on k frames better than
none at all, which renders with the preset's first candidate (4.6 + ensembling at the size rule's scale)?

Fairness: each choice is scored on the same frames its k samples are drawn from (which flatters every rule a
little), subsets are random where the product takes fixed, evenly spread positions (``--spread`` draws those instead, from a
random offset), and upsample's tie rule (``prefer_finer``) is left out.

For each clip, every candidate rebuilds the same ``--triplets`` frames spread over the clip (no duplicate or scene
cut among a triplet's frames, as ``tuning_samples`` keeps them). A k-sample search is then simulated on random
k-subsets of those frames (seeded): it chooses the candidate with the best mean on the subset, and its *gain* is
that candidate's mean PSNR over all the clip's rebuilt frames minus the first candidate's. Reported per k: the
mean gain, the 5th percentile and the share of searches that lose more than 0.05 dB.

The clips: the PyPI clips, and two made for confirming (scripts/measure_detection.py's virtual cameras over
Middlebury photographs and over a bigbuckbunny.mp4 frame).

Usage: PYTHONPATH=. .venv/bin/python scripts/measure_search_samples.py [--triplets 24] [--draws 2000] [--z Z]
           [--cache FILE.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from retime_bench.clipio import iter_video_frames  # noqa: E402
from retime.detect import block_average, detect, difference_scores  # noqa: E402
from retime.interpolate import Interpolator  # noqa: E402
from retime.media.decode import to_rgb  # noqa: E402
from retime.metrics import psnr  # noqa: E402
from retime.pipeline._model import ModelSettings  # noqa: E402

CLIPS = ROOT / "assets" / "clips"
SAMPLE_COUNTS = (1, 2, 3, 4, 6)
LOSS_DB = 0.05


def pypi_clip(name: str) -> list[np.ndarray]:
    return [rgb for _, rgb in iter_video_frames(CLIPS / name)]


def made_clips() -> list[tuple[str, list[np.ndarray]]]:
    import measure_detection

    out = []
    for name, yuv, _ in measure_detection.held_out_clips():
        if name.startswith("camera-"):
            out.append((name, [to_rgb(av.VideoFrame.from_ndarray(f, format="yuv420p")) for f in yuv]))
    return out


def triplet_centres(frames: list[np.ndarray], count: int) -> list[int]:
    """Up to ``count`` frames i spread over the clip whose triplet (i - 1, i, i + 1) has no repeat or cut."""
    grey = [block_average(np.asarray(av.VideoFrame.from_ndarray(f, format="rgb24").to_ndarray(format="gray")), 4)
            for f in frames]
    detection = detect(difference_scores(grey))
    bad = set(detection.duplicates) | set(detection.cuts)
    usable = [i for i in range(1, len(frames) - 1) if not ({i, i + 1} & bad)]
    picks = np.linspace(0, len(usable) - 1, min(count, len(usable))).round().astype(int)
    return sorted({usable[p] for p in picks})


def rebuild_scores(frames: list[np.ndarray], centres: list[int]) -> tuple[list, np.ndarray]:
    """(candidates, PSNR array (candidates, triplets)) of the balanced preset at this size."""
    height, width = frames[0].shape[:2]
    candidates = ModelSettings().candidates(height, width)
    engines: dict[str, Interpolator] = {}
    table = np.zeros((len(candidates), len(centres)))
    for c, candidate in enumerate(candidates):
        engine = engines.setdefault(candidate.model, Interpolator(model=candidate.model))
        for j, i in enumerate(centres):
            out = engine.interpolate(frames[i - 1], frames[i + 1], [0.5], scale=candidate.scale,
                                     ensemble=candidate.ensemble, flips=candidate.flips)[0]
            table[c, j] = min(psnr(out, frames[i]), 100.0)
    return candidates, table


def simulate(table: np.ndarray, k: int, draws: int, rng: np.random.Generator, z: float | None,
             spread: bool = False) -> np.ndarray:
    """Gains (dB) over candidate 0 of ``draws`` k-sample searches. ``z`` None: the best mean wins (the search as
    it was); a number: the best mean wins only if its paired gain over candidate 0 on the samples, less ``z``
    standard errors, is positive (never with one sample)."""
    full = table.mean(axis=1)
    n = table.shape[1]
    gains = np.empty(draws)
    for d in range(draws):
        if spread:  # as the product takes them: evenly spaced over the clip, here from a random offset
            subset = (rng.uniform(0, n / k) + np.arange(k) * n / k).astype(int)
        else:
            subset = rng.choice(n, size=k, replace=False)
        chosen = int(np.argmax(table[:, subset].mean(axis=1)))
        if z is not None and chosen != 0:
            paired = table[chosen, subset] - table[0, subset]
            if k < 2 or paired.mean() - z * paired.std(ddof=1) / np.sqrt(k) <= 0:
                chosen = 0
        gains[d] = full[chosen] - full[0]
    return gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triplets", type=int, default=24)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--z", type=float, default=None,
                        help="simulate the paired rule with this many standard errors (default: best mean wins)")
    parser.add_argument("--cache", type=Path, help="keep the rebuild tables here (npz), and reuse them")
    parser.add_argument("--spread", action="store_true",
                        help="draw evenly spaced samples (as the product) instead of random subsets")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cached = dict(np.load(args.cache, allow_pickle=True)) if args.cache and args.cache.exists() else {}
    if cached:
        clips = [(name, None) for name in cached]
    else:
        clips = [(name, pypi_clip(name)) for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
        clips += made_clips()
    store = {}
    print("| clip | size | rebuilt | full-clip PSNR per candidate (first = no search) | "
          + " | ".join(f"k={k}: mean gain / 5th pct / P(loss > {LOSS_DB})" for k in SAMPLE_COUNTS) + " |")
    print("|---|---|---|---|" + "---|" * len(SAMPLE_COUNTS))
    pooled = {k: [] for k in SAMPLE_COUNTS}
    print(f"rule: {'best mean wins' if args.z is None else f'paired gain over the first, less {args.z:g} SE'}\n")
    for name, frames in clips:
        started = time.time()
        if cached:
            labels, table, size = cached[name]
        else:
            centres = triplet_centres(frames, args.triplets)
            candidates, table = rebuild_scores(frames, centres)
            labels, size = [c.label() for c in candidates], frames[0].shape[1::-1]
            store[name] = np.array([labels, table, size], dtype=object)
        full = table.mean(axis=1)
        cells = []
        for k in SAMPLE_COUNTS:
            if k > table.shape[1]:
                cells.append("-")
                continue
            gains = simulate(table, k, args.draws, rng, args.z, args.spread)
            pooled[k].append(gains)
            cells.append(f"{gains.mean():+.3f} / {np.quantile(gains, 0.05):+.3f} / {(gains < -LOSS_DB).mean():.2f}")
        per = ", ".join(f"{label} {p:.2f}" for label, p in zip(labels, full))
        print(f"| {name} | {size[0]}x{size[1]} | {table.shape[1]} | {per} | " + " | ".join(cells) + " |")
        print(f"# {name}: {time.time() - started:.0f} s", file=sys.stderr)
    print("| all clips, pooled | | | | " + " | ".join(
        f"{np.concatenate(pooled[k]).mean():+.3f} / {np.quantile(np.concatenate(pooled[k]), 0.05):+.3f} / "
        f"{(np.concatenate(pooled[k]) < -LOSS_DB).mean():.2f}" if pooled[k] else "-" for k in SAMPLE_COUNTS) + " |")
    if store and args.cache:
        np.savez(args.cache, **store)


if __name__ == "__main__":
    main()
