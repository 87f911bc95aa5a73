"""Which second flow aligns I_k with Î_t best? The measurement behind ``retime.refine.flow`` (docs/refinement.md).

For every 19th cached UCF101 training triplet (10 triplets; a measurement of the frozen IFNet, nothing is trained),
warp I_k to Î_t's grid with each candidate flow and report the Charbonnier sum against Î_t (lower = better aligned):

- ``reuse``: the first stage's F_t→k;
- ``t0``: IFNet(img0=Î_t, img1=I_k, timestep=0), ``flow[:, 2:4]``;
- ``mid``: IFNet(Î_t, I_k, timestep=0.5), F_m→1 − F_m→0 (linear motion);
- ``residual``: :func:`retime.refine.flow.residual_flows` (IFNet between Î_t and I_k warped by F_t→k, composed);

each at ``scale`` 1 and 0.5 (half-resolution flow).

``python scripts/refiner_flowcheck.py runs/refine3/cache-s256-reuse``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from retime.interpolate.ifnet import SCALES, IFNet
from retime.interpolate.warp import backward_warp
from retime.interpolate.weights import load_into, load_state_dict, resolve_weights
from retime_train.data import load_cached
from retime_train.train import charbonnier


@torch.no_grad()
def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    ifnet = IFNet()
    path, digest = resolve_weights(None, entry="rife-4.2x")
    load_into(ifnet, load_state_dict(path, digest), path)
    ifnet.eval()
    files = sorted(Path(argv[0]).glob("*.pt"))[1::19]
    names = ["reuse"] + [f"{m}@{sc:g}" for sc in (1.0, 0.5) for m in ("t0", "mid", "residual")]
    rows = []
    for f in files:
        s = load_cached(f)
        frame = s["frame"][None].clamp(0, 1)
        first = s["first_flow"][None]
        row = []
        for img, fk in ((s["img0"][None], first[:, 0:2]), (s["img1"][None], first[:, 2:4])):
            errors = [charbonnier(backward_warp(img, fk), frame).item()]
            for sc in (1.0, 0.5):
                scales = tuple(x / sc for x in SCALES)
                g = ifnet(frame, img, 0.0, scales=scales).flow[:, 2:4]
                errors.append(charbonnier(backward_warp(img, g), frame).item())
                o = ifnet(frame, img, 0.5, scales=scales)
                errors.append(charbonnier(backward_warp(img, o.flow[:, 2:4] - o.flow[:, 0:2]), frame).item())
                o = ifnet(frame, backward_warp(img, fk), 0.5, scales=scales)
                r = o.flow[:, 2:4] - o.flow[:, 0:2]
                errors.append(charbonnier(backward_warp(img, r + backward_warp(fk, r)), frame).item())
            row.append(errors)
        rows.append(row)
    mean = np.array(rows).mean(0)  # (2, len(names))
    print("| flow | I_0 → Î_t | I_1 → Î_t |\n|---|---:|---:|")
    for j, name in enumerate(names):
        print(f"| {name} | {mean[0, j]:.0f} | {mean[1, j]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
