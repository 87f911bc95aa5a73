"""The second optical flow of the refinement stage (docs/refinement.md, step 3): from the predicted frame Î_t's
grid into each input.

Two modes (docs/refinement.md, "Second flow", has the measurements behind the choice):

- ``"reuse"`` (default): the first stage's own F_t→0 and F_t→1. Free.
- ``"residual"``: re-estimated after the prediction, initialised by F_t→k. IFNet runs on (Î_t, W(I_k, F_t→k)) at
  t = 0.5 (both k in one batch of 2); under linear motion the flow from Î_t's grid into the warped frame is
  R = F_m→1 − F_m→0, and the second flow is the composition G_k(p) = R(p) + F_t→k(p + R(p)). Costs two more IFNet
  passes, for a small gain in alignment over "reuse".

The literal reading "IFNet(img0=Î_t, img1=I_k, timestep=0), ``flow[:, 2:4]``" was measured and rejected: at t = 0
the fusion mask gives the frame warped from img1 (almost) no weight, so RIFE never learnt that flow; warping I_k
with it aligns far worse than F_t→k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from retime.interpolate.ifnet import SCALES, STRIDE, IFNet, IFNetOutput
from retime.interpolate.warp import backward_warp

__all__ = ["FLOW_MODES", "residual_flows", "second_flows"]

#: The second-flow modes, default first.
FLOW_MODES = ("reuse", "residual")


def residual_flows(ifnet: IFNet, first: IFNetOutput, img0: torch.Tensor, img1: torch.Tensor, *,
                   scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Second flows re-estimated by ``ifnet`` between Î_t and I_k warped by the first stage (mode ``"residual"``).

    Args:
        ifnet: the (frozen) first-stage network.
        first: its output for (img0, img1) (``frame``, ``flow``: ``(B, ·, H, W)``).
        img0, img1: ``(B, 3, H, W)`` float in [0, 1], the first stage's inputs.
        scale: RIFE's resolution knob in (0, 1]; H and W are zero-padded to a multiple of ``64 / scale``.

    Returns:
        ``(flow0, flow1)``, each ``(B, 2, H, W)`` in pixels, from Î_t's grid into I_0 / I_1.

    Raises:
        ValueError: shapes differ, or ``scale`` is not in (0, 1].
    """
    if not 0 < scale <= 1:
        raise ValueError(f"residual_flows: scale must be in (0, 1], got {scale}")
    if first.frame.shape != img0.shape or img0.shape != img1.shape:
        raise ValueError(f"residual_flows: frame {tuple(first.frame.shape)}, img0 {tuple(img0.shape)} and img1 "
                         f"{tuple(img1.shape)} must have the same shape")
    batch, _, height, width = img0.shape
    f0, f1 = first.flow[:, 0:2], first.flow[:, 2:4]
    warped = torch.cat((backward_warp(img0, f0), backward_warp(img1, f1)), 0)
    multiple = math.ceil(STRIDE / scale)
    pad = (0, -width % multiple, 0, -height % multiple)
    pred = F.pad(first.frame.clamp(0.0, 1.0), pad).repeat(2, 1, 1, 1)
    out = ifnet(pred, F.pad(warped, pad), 0.5, scales=tuple(s / scale for s in SCALES))
    residual = (out.flow[:, 2:4] - out.flow[:, 0:2])[:, :, :height, :width]  # linear motion: Î_t → warped
    initial = torch.cat((f0, f1), 0)
    flows = residual + backward_warp(initial, residual)  # G(p) = R(p) + F_t→k(p + R(p))
    return flows[:batch], flows[batch:]


def second_flows(ifnet: IFNet, first: IFNetOutput, img0: torch.Tensor, img1: torch.Tensor, *,
                 mode: str = "reuse") -> tuple[torch.Tensor, torch.Tensor]:
    """The second flows of the given ``mode`` (:data:`FLOW_MODES`): ``(flow0, flow1)``, ``(B, 2, H, W)`` pixels.

    Raises:
        ValueError: unknown mode.
    """
    if mode == "reuse":
        return first.flow[:, 0:2], first.flow[:, 2:4]
    if mode == "residual":
        return residual_flows(ifnet, first, img0, img1)
    raise ValueError(f"unknown second-flow mode {mode!r}: use one of {FLOW_MODES}")
