"""The refinement stage of the design documents (docs/refinement.md) ("implicit warp"): second flows from the predicted frame into the
inputs, flow-guided patch attention, and a fusion network; plus its training (``retime.refine.train``) and held-out
evaluation (``retime.refine.evaluate``). See docs/refinement.md.

The engine calls :func:`refine` after IFNet's first stage::

    frame = refine(refiner, ifnet, first, img0, img1)   # (B, 3, H, W), not clamped
"""

from __future__ import annotations

import torch

from retime.interpolate.ifnet import IFNet, IFNetOutput
from retime.refine.flow import FLOW_MODES, second_flows
from retime.refine.model import Refiner, RefinerConfig, RefineOutput, gather_patches
from retime.refine.weights import load_refiner


def refine(refiner: Refiner, ifnet: IFNet, first: IFNetOutput, img0: torch.Tensor, img1: torch.Tensor, *,
           flow_mode: str = FLOW_MODES[0]) -> torch.Tensor:
    """Refine the first stage's frame: second flows (:mod:`retime.refine.flow`), then ``refiner``.

    Args:
        refiner: the trained :class:`Refiner` (same device/dtype as the inputs).
        ifnet: the first-stage IFNet (reused, frozen, for the second flows).
        first: ``ifnet(img0, img1, t)``'s output for these inputs (``frame``, ``mask`` ``(B, ·, H, W)``).
        img0, img1: ``(B, 3, H, W)`` float in [0, 1], the inputs the first stage saw (padded as it saw them).
        flow_mode: ``"reuse"`` (the first stage's F_t→k, free; what the committed weights were trained with) or
            ``"residual"`` (re-estimated by two more IFNet passes).

    Returns:
        ``(B, 3, H, W)`` the refined frame, same dtype/device, not clamped.
    """
    g0, g1 = second_flows(ifnet, first, img0, img1, mode=flow_mode)
    return refiner(first.frame, img0, img1, g0, g1, first.mask, keep_attention=False).frame


__all__ = ["RefineOutput", "Refiner", "RefinerConfig", "gather_patches", "load_refiner", "refine", "second_flows"]
