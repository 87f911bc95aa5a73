"""Held-out evaluation of the refinement stage: IFNet alone against IFNet + refinement, PSNR per set.

Sets (none used in training; the training data is the UCF101/DVF subset only):

- **middlebury**: the 12 Middlebury-other triplets (frame10, frame10i11 = truth, frame11), t = 0.5;
- **clips-2x** ("drop every other frame", t = 0.5): frames 2j and 2j+2 of the PyPI clips in, 2j+1 the truth;
- **clips-4x** ("drop 3 of 4", t = 0.25, 0.5, 0.75): frames 4j and 4j+4 in, 4j+1, 4j+2, 4j+3 the truths.

The clip windows are fixed (:data:`CLIP_WINDOWS`: evenly spaced start frames), and a window is skipped when two of
its consecutive frames differ by less than 0.5 grey levels (a duplicated frame, e.g. bigbuckbunny's 24→25 fps
repeats at frames 7, 32, ...: its "truth" would not be the frame at t). PSNR is over RGB, 8-bit, on the rounded
uint8 output (as the engine writes it), averaged per frame and then per set.

``python scripts/evaluate_refiner.py --refiner retime/interpolate/refine-implicit-warp.pth`` prints the table (Markdown). The first
stage's outputs are cached under ``--cache`` (keyed by nothing but the file names: delete the folder after changing
IFNet).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retime.interpolate.ifnet import SCALES, STRIDE, IFNet
from retime.metrics import psnr
from retime_train.data import MIN_MOTION, _grey_difference, _read_image, _video_frames, to_tensor

ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder beside the repository (the steering side's data).
MIDDLEBURY = ROOT.parent / "shared" / "data" / "middlebury-other"
CLIPS = ROOT / "assets" / "clips"
#: clip → (number of t=0.5 windows, number of 4x windows), start frames evenly spaced over the clip.
CLIP_WINDOWS = {"carphone_pristine.mp4": (12, 6), "bikes.mp4": (8, 4), "bigbuckbunny.mp4": (3, 2)}


def _starts(n_frames: int, span: int, count: int) -> list[int]:
    """``count`` start frames, multiples of ``span``, evenly spaced so that start + span < n_frames."""
    last = (n_frames - 1 - span) // span
    return sorted({round(j * last / max(count - 1, 1)) * span for j in range(count)})


def cases(clips_dir: Path = CLIPS, middlebury: Path = MIDDLEBURY) -> list[tuple[str, str, int, int, list, list]]:
    """The evaluation cases: ``(set, name, i0, i1, [t...], [truth...])`` with uint8 frames loaded lazily by index."""
    out = []
    for seq in sorted(p for p in middlebury.iterdir() if p.is_dir()):
        out.append(("middlebury", seq.name, seq / "frame10.png", seq / "frame11.png", [0.5],
                    [seq / "frame10i11.png"]))
    for clip, (n2, n4) in CLIP_WINDOWS.items():
        frames = _video_frames(clips_dir / clip)
        for span, count, label in ((2, n2, "clips-2x"), (4, n4, "clips-4x")):
            for s in _starts(len(frames), span, count):
                window = frames[s:s + span + 1]
                if min(_grey_difference(a, b) for a, b in zip(window, window[1:])) < MIN_MOTION:
                    continue
                ts = [j / span for j in range(1, span)]
                out.append((label, f"{clip}@{s}", (clip, s), (clip, s + span), ts,
                            [(clip, s + j) for j in range(1, span)]))
    return out


def _load(ref, video_cache: dict) -> np.ndarray:
    if isinstance(ref, tuple):
        clip, index = ref
        if clip not in video_cache:
            video_cache[clip] = _video_frames(CLIPS / clip)
        return video_cache[clip][index]
    return _read_image(ref)


def psnr_u8(prediction: torch.Tensor, truth: np.ndarray) -> float:
    """PSNR (dB) of a ``(3, H, W)`` float prediction, clamped and rounded to uint8, against an ``(H, W, 3)`` uint8."""
    return psnr(prediction.clamp(0, 1).mul(255).round().permute(1, 2, 0).to(torch.uint8).numpy(), truth)


@torch.no_grad()
def prepare(ifnet: IFNet, cache: Path) -> list[Path]:
    """Run IFNet (the first stage) on every case; one ``.pt`` per case in ``cache`` (resumable)."""
    cache.mkdir(parents=True, exist_ok=True)
    videos: dict = {}
    files = []
    for i, (label, name, r0, r1, ts, truths) in enumerate(cases()):
        path = cache / f"{i:03d}.pt"
        files.append(path)
        if path.exists():
            continue
        img0, img1 = _load(r0, videos), _load(r1, videos)
        height, width = img0.shape[:2]
        pad = (0, -width % STRIDE, 0, -height % STRIDE)
        t0, t1 = F.pad(to_tensor(img0), pad), F.pad(to_tensor(img1), pad)
        n = len(ts)
        first = ifnet(t0.expand(n, -1, -1, -1), t1.expand(n, -1, -1, -1), torch.tensor(ts), scales=SCALES)
        torch.save({"set": label, "name": name, "ts": ts, "height": height, "width": width,
                    "img0": t0, "img1": t1, "frame": first.frame, "mask": first.mask, "flow": first.flow,
                    "truths": [torch.from_numpy(_load(r, videos)) for r in truths]}, path)
        print(f"prepared {i + 1}: {label} {name}", file=sys.stderr, flush=True)
    return files


@torch.no_grad()
def score(refiner, files: list[Path], *, flow_mode: str = "reuse", ifnet: IFNet | None = None,
          sets: tuple[str, ...] | None = None) -> dict[str, dict[str, list[float]]]:
    """PSNR per frame, ``{set: {"ifnet": [...], "refined": [...]}}``, plus ``"<set> t=<t>"`` entries for sets with
    several timesteps. ``flow_mode="residual"`` needs ``ifnet``; ``sets`` restricts the cases scored."""
    from retime.interpolate.ifnet import IFNetOutput
    from retime.refine.flow import second_flows

    results: dict[str, dict[str, list[float]]] = {}
    for path in files:
        case = torch.load(path, map_location="cpu", weights_only=False)
        n, h, w = len(case["ts"]), case["height"], case["width"]
        label = "middlebury" if case["set"] == "middlebury" else ("clips-2x" if n == 1 else "clips-4x")
        if sets is not None and label not in sets:
            continue
        img0 = case["img0"].expand(n, -1, -1, -1)
        img1 = case["img1"].expand(n, -1, -1, -1)
        first = IFNetOutput(frame=case["frame"], flow=case["flow"], mask=case["mask"], warped0=None, warped1=None)
        g0, g1 = second_flows(ifnet, first, img0, img1, mode=flow_mode)
        refined = refiner(case["frame"], img0, img1, g0, g1, case["mask"], keep_attention=False).frame
        for j, t in enumerate(case["ts"]):
            truth = case["truths"][j].numpy()
            a = psnr_u8(case["frame"][j, :, :h, :w], truth)
            b = psnr_u8(refined[j, :, :h, :w], truth)
            keys = [label] + ([f"{label} t={t:g}"] if n > 1 else [])
            for key in keys:
                entry = results.setdefault(key, {"ifnet": [], "refined": []})
                entry["ifnet"].append(a)
                entry["refined"].append(b)
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    """Markdown table: set, frames, mean PSNR IFNet, refined, gain."""
    clips = {"ifnet": [], "refined": []}
    for key, entry in results.items():
        if key in ("clips-2x", "clips-4x"):
            clips["ifnet"] += entry["ifnet"]
            clips["refined"] += entry["refined"]
    rows = dict(results)
    if clips["ifnet"]:
        rows["clips (2x and 4x frames)"] = clips
    lines = ["| set | frames | IFNet (dB) | IFNet + refine (dB) | gain (dB) |", "|---|---:|---:|---:|---:|"]
    for key in sorted(rows, key=lambda k: (not k.startswith("middlebury"), k)):
        a, b = np.mean(rows[key]["ifnet"]), np.mean(rows[key]["refined"])
        lines.append(f"| {key} | {len(rows[key]['ifnet'])} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/evaluate_refiner.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--refiner", help="refinement weights (omit to only prepare the cache)")
    parser.add_argument("--cache", default="runs/refine/eval-cache", help="cache of first-stage outputs")
    parser.add_argument("--weights", default=None, help="IFNet checkpoint (default: the registry's)")
    parser.add_argument("--flow-mode", default="reuse", choices=("reuse", "residual"),
                        help="second flows (the committed weights were trained with reuse)")
    parser.add_argument("--sets", nargs="*", default=None, choices=("middlebury", "clips-2x", "clips-4x"),
                        help="score only these sets")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from retime.interpolate.weights import load_into, load_state_dict, resolve_weights
    from retime.refine.weights import load_refiner

    path, digest = resolve_weights(args.weights, entry="rife-4.2x")
    ifnet = IFNet()
    load_into(ifnet, load_state_dict(path, digest), path)
    files = prepare(ifnet.eval(), Path(args.cache))
    if args.refiner:
        refiner = load_refiner(args.refiner).eval()
        print(table(score(refiner, files, flow_mode=args.flow_mode, ifnet=ifnet,
                          sets=tuple(args.sets) if args.sets else None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
