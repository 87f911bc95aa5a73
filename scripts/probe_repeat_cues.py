"""Probe cues that might tell a re-coded repeat from slow real motion where the score rule cannot (issue 14).

The failing cells of docs/detection.md (bigbuckbunny.mp4 at x264 ultrafast CRF 18/23, carphone_pristine.mp4 at
CRF 23, both presets; seeds 0-2, damaged as scripts/measure_detection.py does, without timestamp gaps) are encoded,
decoded and scored at pass 1's 4x4 blocks. For every frame the rule leaves ambiguous (taken by its dip test but
dropped by its sharpness test, or missed, or wrongly taken) and for every single repeat and every real frame
that scores under 1 grey level, it prints four cues:

- ``linear``: score / mean |B_t - (B_t-1 + B_t+1) / 2| on the block-averaged frames (a repeat sits at its
  predecessor, not half-way to its successor: low; a real frame in slow, even motion: high);
- ``jump``: the score after the frame over the local motion level (after a repeat the next frame has moved two
  intervals: high);
- ``tau``: where the frame sits on the way from its predecessor to its successor, <B_t - B_t-1, B_t+1 - B_t-1> /
  |B_t+1 - B_t-1|^2 (a repeat: 0 whatever its coding noise, if the noise is not along the motion; even motion: 0.5);
- ``mv``: the share of the frame's area whose decoder motion vectors (FFmpeg ``+export_mvs``) against the past are
  not zero (a repeat: zero almost everywhere).

Usage: PYTHONPATH=. .venv/bin/python scripts/probe_repeat_cues.py    (about a minute on two cores)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure_detection as md  # noqa: E402
from retime.detect import DetectionSettings, block_average, detect, difference_scores  # noqa: E402
from retime.detect import _rules  # noqa: E402

CELLS = {"bigbuckbunny.mp4": ("fast-crf18", "fast-crf23"), "carphone_pristine.mp4": ("crf23", "fast-crf23")}
SEEDS = range(3)


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """(4x4 block-averaged grey frames as float32, share of each frame's area with a non-zero past motion vector)."""
    blocks, moving = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            grey = frame.to_ndarray(format="gray")
            blocks.append(block_average(grey, 4).astype(np.float32))
            vectors = next((d.to_ndarray() for d in frame.side_data if str(d.type).endswith("MOTION_VECTORS")), None)
            if vectors is None:
                moving.append(np.nan)
                continue
            past = vectors[vectors["source"] < 0]
            area = past["w"].astype(float) * past["h"]
            nonzero = (past["motion_x"] != 0) | (past["motion_y"] != 0)
            moving.append(float(area[nonzero].sum() / grey.size))
    return blocks, np.array(moving)


def main() -> None:
    settings = DetectionSettings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="retime-cues-") as tmp:
        for clip, encodings in CELLS.items():
            yuv, _, rate = md.decode(md.CLIPS / clip)
            colours: list[float] = []
            _, grey, _ = md.decode(md.CLIPS / clip, colours)
            cuts = detect(md.scores_by_block(grey)[1], colours=colours).cuts
            known = md.KNOWN_DUPLICATES[clip]
            for seed in SEEDS:
                rng = np.random.default_rng([seed, len(yuv)])
                drops, at_cut, freeze, _ = md.damage(len(yuv), rng, set(known), cuts)
                damaged = md.apply_damage(yuv, drops + at_cut + list(freeze or ()))
                truth, frozen = set(drops) | set(known), set(freeze or ()) | set(at_cut)
                for encoding in encodings:
                    path = Path(tmp) / "v.mkv"
                    md.encode(damaged, rate, path, encoding)
                    blocks, moving = decode(path)
                    scores = np.array(difference_scores([b.astype(np.uint8) for b in blocks]))
                    taken, motion, _, _ = _rules.find_duplicates(scores, settings)
                    dips = (scores <= np.fmax(settings.threshold, settings.deep_ratio * motion)) & (
                        scores <= settings.dip_ratio * motion) & (motion >= settings.min_motion)
                    for t in range(2, len(blocks) - 1):
                        if t in frozen or t - 1 in truth and t not in truth:
                            continue  # freezes, drops at cuts, and the jump after a repeat
                        single = t in truth and t - 1 not in truth and t + 1 not in truth
                        real = t not in truth and scores[t - 1] < 1.0
                        ambiguous = bool(dips[t - 1]) != bool(taken[t - 1]) or taken[t - 1] != (t in truth)
                        if not (single or real):
                            continue
                        linear = float(np.abs(blocks[t] - (blocks[t - 1] + blocks[t + 1]) / 2).mean())
                        path = blocks[t + 1] - blocks[t - 1]
                        tau = float(((blocks[t] - blocks[t - 1]) * path).sum() / max(float((path * path).sum()), 1e-9))
                        rows.append(dict(kind="repeat" if t in truth else "real", clip=clip, encoding=encoding,
                                         seed=seed, frame=t, score=float(scores[t - 1]), ambiguous=ambiguous,
                                         linear=float(scores[t - 1]) / max(linear, 1e-6), tau=tau,
                                         jump=float(scores[t] / motion[t - 1]) if motion[t - 1] > 0 else np.nan,
                                         mv=float(moving[t])))
    print("| preset | cue | repeats: 5th-95th percentile (worst) | real frames under 1 grey level: 5th-95th "
          "(worst) | ambiguous repeats | ambiguous real frames |")
    print("|---|---|---|---|---|---|")
    for preset in ("ultrafast", "medium"):
        group = [r for r in rows if r["encoding"].startswith("fast-") == (preset == "ultrafast")]
        for cue, higher_real in (("linear", True), ("jump", False), ("tau", True), ("mv", True)):
            rep = np.array([r[cue] for r in group if r["kind"] == "repeat" and np.isfinite(r[cue])])
            real = np.array([r[cue] for r in group if r["kind"] == "real" and np.isfinite(r[cue])])
            amb_rep = sorted(round(r[cue], 2) for r in group if r["kind"] == "repeat" and r["ambiguous"])
            amb_real = sorted(round(r[cue], 2) for r in group if r["kind"] == "real" and r["ambiguous"])
            worst_rep = rep.max() if higher_real else rep.min()
            worst_real = real.min() if higher_real else real.max()
            print(f"| {preset} | {cue} | {np.quantile(rep, .05):.2f}-{np.quantile(rep, .95):.2f} ({worst_rep:.2f}) | "
                  f"{np.quantile(real, .05):.2f}-{np.quantile(real, .95):.2f} ({worst_real:.2f}) | "
                  f"{amb_rep} | {amb_real} |")
    print(f"\n{sum(r['kind'] == 'repeat' for r in rows)} single repeats, {sum(r['kind'] == 'real' for r in rows)} "
          f"real frames under 1 grey level; cells {CELLS}, seeds {list(SEEDS)}")
    for r in rows:
        if r["ambiguous"]:
            print(f"ambiguous {r['kind']:6} {r['clip']:22} {r['encoding']:10} seed {r['seed']} frame {r['frame']:3}: "
                  f"score {r['score']:.3f}, linear {r['linear']:.2f}, jump {r['jump']:.2f}, tau {r['tau']:.3f}, "
                  f"mv {r['mv']:.3f}")


if __name__ == "__main__":
    main()
