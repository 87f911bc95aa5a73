"""Backward warping with dense optical flow.

Source: RIFE (Huang et al., ECCV 2022), section 3: intermediate frames are made by *backward warping* the inputs with
the intermediate flows, Î_t←0 = W(I_0, F_t→0) and Î_t←1 = W(I_1, F_t→1), where W samples the input at
p + F(p) with bilinear interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["backward_warp", "grid_step"]


def _base_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Identity sampling grid in ``grid_sample``'s normalised coordinates, ``(1, H, W, 2)``, x first."""
    xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def grid_step(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """One pixel in ``grid_sample``'s align_corners=True units, ``(2,)`` (x, y): x = -1 is pixel 0, +1 is pixel W-1.

    Multiplying a flow in pixels by it gives the same flow in the sampling grid's normalised units.
    """
    return torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=like.device, dtype=like.dtype)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``p + flow(p)`` for every pixel ``p`` (bilinear, border padding).

    Args:
        image: ``(B, C, H, W)`` floating tensor (any C; images in [0, 1] or feature maps).
        flow: ``(B, 2, H, W)`` same dtype and device, in **pixels** at this resolution; channel 0 is the horizontal
            (x) displacement, channel 1 the vertical (y) one.

    Returns:
        ``(B, C, H, W)`` warped tensor, same dtype and device. Positions outside the image take the nearest border
        value (``padding_mode="border"``), pixel centres are aligned (``align_corners=True``), as in RIFE.

    Raises:
        ValueError: if the batch or spatial sizes of ``image`` and ``flow`` differ, or ``flow`` has not 2 channels.
    """
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != image.shape[0] or flow.shape[2:] != image.shape[2:]:
        raise ValueError(f"backward_warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} do not match "
                         "(expected flow (B, 2, H, W) with the image's B, H, W)")
    _, _, height, width = image.shape
    # Pixels to normalised units: with align_corners=True, x = -1 is pixel 0 and x = +1 is pixel W-1.
    grid = _base_grid(height, width, flow) + flow.permute(0, 2, 3, 1) * grid_step(height, width, flow)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
