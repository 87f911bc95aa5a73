"""The refinement stage ("implicit warp", docs/refinement.md): second flows from the predicted frame into the
inputs, flow-guided patch attention, and a fusion network. Its training is :mod:`retime_train` (``retime train``),
its held-out evaluation ``scripts/evaluate_refiner.py``.

The engine knows nothing of this package: it receives a :class:`Refinement` (``Interpolator(refiner=...)``,
built by the pipeline with :func:`load_refinement`) and calls it after IFNet's first stage::

    frame = refinement(ifnet, first, img0, img1)   # (B, 3, H, W), not clamped
"""

from __future__ import annotations

import torch
from torch import nn

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


class Refinement(nn.Module):
    """The refinement stage as the engine calls it: ``refinement(ifnet, first, img0, img1)`` → the refined frame.

    Args:
        refiner: the trained :class:`Refiner`.
        flow_mode: how the second flows are found (see :func:`refine`).

    Call with the arguments of :func:`refine` after ``refiner``; returns ``(B, 3, H, W)`` in the inputs' dtype,
    not clamped. Move it with ``.to(device)`` like any module.
    """

    def __init__(self, refiner: Refiner, *, flow_mode: str = FLOW_MODES[0]) -> None:
        super().__init__()
        self.refiner = refiner
        self.flow_mode = flow_mode

    def forward(self, ifnet: IFNet, first: IFNetOutput, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return refine(self.refiner, ifnet, first, img0, img1, flow_mode=self.flow_mode)


def load_refinement(path=None) -> Refinement:
    """The committed (or ``path``'s, or ``$RETIME_REFINER_WEIGHTS``') refinement weights as a :class:`Refinement`,
    in eval mode on the CPU.

    Raises:
        ModelError: missing, wrong SHA-256, unreadable, or a layout that does not fit.
    """
    return Refinement(load_refiner(path)).eval()


__all__ = ["RefineOutput", "Refinement", "Refiner", "RefinerConfig", "gather_patches", "load_refinement",
           "load_refiner", "refine", "second_flows"]
