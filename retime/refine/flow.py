"""The second optical flow of DESIGN.md section B (step 3): from the predicted frame Î_t into each input frame.

Choice (docs/refinement.md, "Second flow"): the IFNet itself, run on the pair (Î_t, I_k) at timestep 0, gives in
``flow[:, 2:4]`` the flow from Î_t's pixel grid into I_k. The two pairs (Î_t, I_0) and (Î_t, I_1) run as one batch
of 2, and at half resolution by default (RIFE's ``scale=0.5``: every block works on a 2x coarser grid), which costs
about a third of a full-resolution pass (measured 0.36 s against 1.11 s for a 256x256 batch of 2 on one CPU thread)
and loses little: the attention patch around the target absorbs the last pixel of error. ``scale=1`` gives the full
pass; :func:`reuse_first_flows` (F_t→k of the first stage, free) is the cheapest option and was measured too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from retime.interpolate.ifnet import SCALES, STRIDE, IFNet, IFNetOutput

#: Default resolution of the second flow: RIFE's ``scale`` knob (0.5 = flow estimated on a 2x coarser grid).
SECOND_FLOW_SCALE = 0.5


def second_flows(ifnet: IFNet, frame: torch.Tensor, img0: torch.Tensor, img1: torch.Tensor, *,
                 scale: float = SECOND_FLOW_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows from Î_t's grid into I_0 and into I_1, estimated by ``ifnet`` on (Î_t, I_k) at t = 0.

    Args:
        ifnet: the (frozen) first-stage network.
        frame: ``(B, 3, H, W)`` Î_t, float in [0, 1] (clamped here: IFNet was trained on images in [0, 1]).
        img0, img1: ``(B, 3, H, W)``, same dtype/device.
        scale: RIFE's resolution knob in (0, 1]; H and W are zero-padded to a multiple of ``64 / scale`` and the
            flows cropped back.

    Returns:
        ``(flow0, flow1)``, each ``(B, 2, H, W)`` in pixels at full resolution (x then y).

    Raises:
        ValueError: shapes differ, or ``scale`` is not in (0, 1].
    """
    if not 0 < scale <= 1:
        raise ValueError(f"second_flows: scale must be in (0, 1], got {scale}")
    if frame.shape != img0.shape or frame.shape != img1.shape:
        raise ValueError(f"second_flows: frame {tuple(frame.shape)}, img0 {tuple(img0.shape)} and img1 "
                         f"{tuple(img1.shape)} must have the same shape")
    batch, _, height, width = frame.shape
    multiple = math.ceil(STRIDE / scale)
    pad = (0, -width % multiple, 0, -height % multiple)
    pred = F.pad(frame.clamp(0.0, 1.0), pad).repeat(2, 1, 1, 1)
    inputs = F.pad(torch.cat((img0, img1), 0), pad)
    out = ifnet(pred, inputs, 0.0, scales=tuple(s / scale for s in SCALES))
    flow = out.flow[:, 2:4, :height, :width]
    return flow[:batch], flow[batch:]


def reuse_first_flows(first: IFNetOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """The free option: the first stage's own F_t→0 and F_t→1 (no second estimation). ``(B, 2, H, W)`` each."""
    return first.flow[:, 0:2], first.flow[:, 2:4]
