"""Scene cut or fast motion? The colour change (retime.detect.colour_change) of real cuts and of fast motion.

Cases, all at native size, thumbnails and histograms exactly as pass 1 makes them (retime.pipeline._analysis.THUMBNAIL):

- the PyPI clips (assets/clips) with every 1st, 2nd, 4th and 6th frame kept: fast motion from real footage; the
  pairs that straddle one of bikes.mp4's five cuts (frames 30, 76, 137, 187, 242) are cuts;
- whip pans: a window of 2/3 of a real frame panning 1% of its width per frame that jumps 15% for one frame
  (the spike the relative cut rule fires on); fast pans: a window of half a real frame crossing it at 11% of
  its width per frame (40-50 grey levels per frame: over scene_cut);
- with --data: the image triplets in shared/data (frame 0 against frame 2 is motion; the last frame of one
  triplet against the first frame of the next, in folder order, is a cut; neighbouring UCF101 ids often come
  from the same scene, so these are hard cuts).

For each case: the grey score, whether the cut rules without colour (scene_cut, cut_ratio) make it a candidate in
its sequence, and its colour change. Prints the extremes; a cut_colour threshold must separate the candidates
that are motion from the cuts.

    PYTHONPATH=. .venv/bin/python scripts/measure_cuts.py [--data /work/shared/data]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import av
import numpy as np

from retime_bench.clipio import load_triplet
from retime.detect import DetectionSettings, colour_change, colour_histogram, detect, frame_difference
from retime.media.decode import iter_luma
from retime.pipeline._analysis import THUMBNAIL

CLIPS = Path(__file__).resolve().parents[1] / "assets" / "clips"
CUTS = {"bikes.mp4": [30, 76, 137, 187, 242]}


def analysed(frames):
    """(grey, histogram) of frames given as av.VideoFrame, the way pass 1 computes them."""
    out = []
    for vf in frames:
        scale = THUMBNAIL / max(vf.width, vf.height)
        thumb = vf.reformat(width=max(1, round(vf.width * scale)), height=max(1, round(vf.height * scale)),
                            format="rgb24", interpolation="AREA").to_ndarray()
        out.append((vf.to_ndarray(format="gray"), colour_histogram(thumb)))
    return out


def sequence(name, frames, cut_at=()):
    """Rows for consecutive pairs of a sequence: (name, is_cut, score, candidate, colour)."""
    scores = [frame_difference(a[0], b[0]) for a, b in zip(frames, frames[1:])]
    candidates = set(detect(scores).cuts)  # without colours: every candidate is reported as a cut
    return [(name, i + 1 in cut_at, scores[i], i + 1 in candidates, colour_change(frames[i][1], frames[i + 1][1]))
            for i in range(len(scores))]


def whip_pan(rgb: np.ndarray, name: str):
    h, w = rgb.shape[:2]
    ww, wh = (2 * w // 3) // 2 * 2, (2 * h // 3) // 2 * 2
    xs, x = [], 0
    for k in range(12):
        xs.append(x)
        x += round(0.15 * ww) if k == 5 else round(0.01 * ww)
    frames = [av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[(h - wh) // 2:(h - wh) // 2 + wh, x:x + ww]),
                                         format="rgb24") for x in xs if x + ww <= w]
    return sequence(name, analysed(frames))


def fast_pan(rgb: np.ndarray, name: str):
    """A window of half the frame crossing it at 11% of the window's width per frame, bobbing up and down."""
    h, w = rgb.shape[:2]
    ww, wh = (w // 2) // 2 * 2, (h // 2) // 2 * 2
    step = round(0.1125 * ww)
    frames = []
    for k in range((w - ww) // step + 1):
        y = round((h - wh) / 2 + (h - wh) / 3 * np.sin(k / 1.7))
        frames.append(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[y:y + wh, k * step:k * step + ww]),
                                                 format="rgb24"))
    return sequence(name, analysed(frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="shared/data: also the Middlebury and UCF101 triplets")
    args = parser.parse_args()
    rows = []
    for clip in sorted(CLIPS.glob("*.mp4")):
        with av.open(str(clip)) as c:
            frames = analysed(c.decode(video=0))
        cuts = CUTS.get(clip.name, [])
        for stride in (1, 2, 4, 6):
            sub = frames[::stride]
            at = {k for k in range(1, len(sub)) if any((k - 1) * stride < c <= k * stride for c in cuts)}
            rows += sequence(f"{clip.stem}/every {stride}", sub, at)
        with av.open(str(clip)) as c:
            middle = next(f for i, f in enumerate(c.decode(video=0)) if i == len(frames) // 2)
        rows += whip_pan(middle.to_ndarray(format="rgb24"), f"{clip.stem}/whip pan")
        rows += fast_pan(middle.to_ndarray(format="rgb24"), f"{clip.stem}/fast pan")
    if args.data:
        for folder in ("middlebury-other", "ucf101-dvf"):
            dirs = sorted(glob.glob(str(args.data / folder / "*")))
            tris = [load_triplet(Path(d)) for d in dirs]
            pairs = [analysed([av.VideoFrame.from_ndarray(t.first, format="rgb24"),
                               av.VideoFrame.from_ndarray(t.last, format="rgb24")]) for t in tris]
            for d, (a, b) in zip(dirs, pairs):
                rows.append((f"{folder}/{Path(d).name}", False, frame_difference(a[0], b[0]), None,
                             colour_change(a[1], b[1])))
            for k in range(len(pairs) - 1):
                a, b = pairs[k][1], pairs[k + 1][0]
                if a[0].shape == b[0].shape:
                    rows.append((f"{folder}/{Path(dirs[k]).name}|{Path(dirs[k + 1]).name}", True,
                                 frame_difference(a[0], b[0]), None, colour_change(a[1], b[1])))
    motion_cand = [r for r in rows if not r[1] and r[3]]
    motion_big = [r for r in rows if not r[1] and r[2] >= 12]
    cuts = [r for r in rows if r[1]]

    def show(title, subset, key, n=8):
        print(f"{title} ({len(subset)}):")
        for name, _, score, cand, colour in sorted(subset, key=key)[:n]:
            print(f"  {name:40s} score {score:6.2f}  candidate {cand!s:5s}  colour change {colour:.3f}")

    show("fast motion the grey rules call a cut, largest colour change first", motion_cand, lambda r: -r[4])
    show("any motion scoring >= 12 grey levels, largest colour change first", motion_big, lambda r: -r[4])
    show("cuts, smallest colour change first", cuts, lambda r: r[4])
    d = DetectionSettings()
    print(f"at the defaults (cut_colour {d.cut_colour:g}, colour_cut {d.colour_cut:g}, cut_min {d.cut_min:g}):")
    print(f"  motion candidates still called cuts: {sum(r[4] >= d.cut_colour for r in motion_cand)}/{len(motion_cand)}")
    print(f"  motion the colour rule alone calls a cut: "
          f"{sum(r[2] >= d.cut_min and r[4] >= d.colour_cut for r in rows if not r[1])}/{len(motion_big)}")
    print(f"  cuts under cut_colour (blended if a candidate): {sum(r[4] < d.cut_colour for r in cuts)}/{len(cuts)}; "
          f"cuts found by the colour rule alone (score >= cut_min, change >= colour_cut): "
          f"{sum(r[2] >= d.cut_min and r[4] >= d.colour_cut for r in cuts)}/{len(cuts)}")
    clip_cuts = [r for r in cuts if "/" in r[0] and "every" in r[0]]
    print(f"max colour change of motion candidates {max(r[4] for r in motion_cand):.3f}; of motion >= 12: "
          f"{max(r[4] for r in motion_big):.3f}; min of cuts {min(r[4] for r in cuts):.3f} "
          f"(clip cuts {min(r[4] for r in clip_cuts):.3f})")


if __name__ == "__main__":
    main()
