"""IFNet: RIFE's intermediate-flow network, laid out to load the Practical-RIFE 4.2x checkpoint.

Source: Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022
(arXiv:2011.06294), section 3, and the tensor layout of the Practical-RIFE 4.2x checkpoint (``encode.*``,
``block0-4.*``). The network estimates, coarse to fine, the intermediate flows F_t→0 and F_t→1 directly from the two
input frames and the timestep t, and a fusion mask M; the frame at t is (paper, eq. 1)

    Î_t = M ⊙ W(I_0, F_t→0) + (1 − M) ⊙ W(I_1, F_t→1)

with W the backward warp. Each IFBlock works at a coarser scale s (downsampling by s, then by 4 inside the block)
and predicts a residual to the flow and a new mask from the inputs warped by the current estimate (paper, eq. 2).

The module is pure: it knows nothing of files, devices or the CLI; the device and dtype come from its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from retime.interpolate import _sparse
from retime.interpolate.warp import backward_warp

__all__ = ["SCALES", "STRIDE", "FeatureEncoder", "IFBlock", "IFNet", "IFNetOutput", "ResConv", "conv_lrelu"]

#: The default coarse-to-fine downsampling factors of the five IFBlocks at ``scale=1`` (Practical-RIFE 4.2x).
SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
#: Height and width of the network's input must be multiples of this at ``scale=1``: the coarsest block works at
#: 1/16 and downsamples by 4 more inside (two stride-2 convolutions).
STRIDE = 64


def conv_lrelu(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (with bias) and LeakyReLU(0.2); the layout of the checkpoint's ``conv0.N.0``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class FeatureEncoder(nn.Module):
    """Per-frame feature encoder (checkpoint ``encode.*``): ``(B, 3, H, W)`` → ``(B, 4, H, W)`` features.

    Three 3x3 convolutions at half resolution, then a 4x4 stride-2 transposed convolution back to full resolution.
    The features are warped alongside the images in every IFBlock after the first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image``: ``(B, 3, H, W)`` float in [0, 1], H and W even → ``(B, 4, H, W)`` same dtype."""
        # in place: each activation overwrites its convolution's output, one full-size map less alive
        x = F.leaky_relu_(self.cnn0(image), 0.2)
        x = F.leaky_relu_(self.cnn1(x), 0.2)
        x = F.leaky_relu_(self.cnn2(x), 0.2)
        return self.cnn3(x)


class ResConv(nn.Module):
    """Residual 3x3 convolution with a learned per-channel scale β: ``LeakyReLU(conv(x)·β + x)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(torch.addcmul(x, self.conv(x), self.beta), 0.2)


class IFBlock(nn.Module):
    """One coarse-to-fine stage of IFNet (checkpoint ``blockN.*``).

    Args:
        in_channels: channels of the stacked input (images, features, timestep, …) *plus* 4 flow channels when the
            block refines an existing flow.
        channels: width of the block's trunk (192, 128, 96, 64, 32 for blocks 0-4).
        outputs: output channels after the pixel shuffle: 13 (4.2x: flow, mask logit, 8 context) or 6 (RIFE 4.6:
            flow, mask-logit residual and one channel the network never reads).

    The block downsamples its input by ``scale`` (bilinear), then by 4 (two stride-2 convolutions), runs eight
    :class:`ResConv`, and upsamples by 4 (transposed convolution + pixel shuffle) to 13 channels: 4 flow
    (F_t→0 and F_t→1, x then y), 1 mask logit and 8 context features (4.2x), which are resized back to full resolution.
    """

    def __init__(self, in_channels: int, channels: int, outputs: int = 13) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv_lrelu(in_channels, channels // 2, stride=2),
                                   conv_lrelu(channels // 2, channels, stride=2))
        self.convblock = nn.Sequential(*(ResConv(channels) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(channels, 4 * outputs, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the block.

        Args:
            x: ``(B, C, H, W)`` stacked inputs at full resolution.
            flow: ``(B, 4, H, W)`` current flow estimate in pixels at full resolution, or ``None`` for block 0.
            scale: downsampling factor of this block (16, 8, 4, 2 or 1 at ``scale=1``).

        Returns:
            ``(flow, mask_logit, context)``: ``(B, 4, H, W)`` flow (residual for blocks 1-4) in pixels,
            ``(B, 1, H, W)`` fusion-mask logit, ``(B, 8, H, W)`` context features; all at full resolution.
        """
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            # Flow is in pixels, so resizing the field by 1/s also divides the displacements by s.
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        # back to the input's dtype (float32 under autocast): flows and the sampling grids made from them need
        # float32's precision (in bfloat16 a 1280-pixel grid is off by several pixels)
        dtype = x.dtype
        out = self.lastconv(self.convblock(self.conv0(x))).to(dtype)
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


@dataclass(frozen=True)
class IFNetOutput:
    """What :meth:`IFNet.forward` returns.

    Attributes:
        frame: ``(B, 3, H, W)`` the interpolated frame Î_t (paper eq. 1), same dtype as the inputs, in [0, 1] up to
            bilinear overshoot (not clamped).
        flow: ``(B, 4, H, W)`` intermediate flows in pixels: ``[:, 0:2]`` is F_t→0, ``[:, 2:4]`` is F_t→1 (x, y).
        mask: ``(B, 1, H, W)`` fusion mask M in (0, 1), the weight of the frame warped from I_0.
        warped0: ``(B, 3, H, W)`` W(I_0, F_t→0).
        warped1: ``(B, 3, H, W)`` W(I_1, F_t→1).
    """

    frame: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor
    warped0: torch.Tensor
    warped1: torch.Tensor


class IFNet(nn.Module):
    """The intermediate-flow network of RIFE (Practical-RIFE 4.2x layout): an encoder and five IFBlocks."""

    #: Channels of a prepared frame (:meth:`encode_frame`): the image and its 4 feature channels.
    stack_channels = 7
    #: Default block scales and the stride they need.
    default_scales = SCALES
    stride = STRIDE
    #: 4.2x has no ensembling of its own (its blocks pass context channels that cannot be time-reversed).
    native_ensemble = False

    def __init__(self) -> None:
        super().__init__()
        # Block inputs: block 0 sees I0, I1 (3+3), their features (4+4) and t (1) = 15 channels; blocks 1-4 see the
        # warped images and features (3+3+4+4), t, the mask logit (1), the 8 context channels and the flow (4) = 28.
        self.block0 = IFBlock(15, 192)
        self.block1 = IFBlock(28, 128)
        self.block2 = IFBlock(28, 96)
        self.block3 = IFBlock(28, 64)
        self.block4 = IFBlock(28, 32)
        self.encode = FeatureEncoder()

    @property
    def blocks(self) -> tuple[IFBlock, ...]:
        return (self.block0, self.block1, self.block2, self.block3, self.block4)

    def encode_frame(self, image: torch.Tensor) -> torch.Tensor:
        """Per-frame input of :meth:`forward_sparse`: ``(B, 3, H, W)`` image → ``(B, 7, H, W)`` = image ‖ features.

        A frame shared by several timesteps or by two consecutive pairs is encoded once.
        """
        return torch.cat((image, self.encode(image)), 1)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5, *,
                scales: tuple[float, ...] = SCALES, feat0: torch.Tensor | None = None,
                feat1: torch.Tensor | None = None) -> IFNetOutput:
        """Interpolate between two frames at timestep t.

        Args:
            img0: ``(B, 3, H, W)`` float (float32 or float16) in [0, 1], the frame at t = 0. H and W must be
                multiples of ``STRIDE / min-scale-ratio`` (64 at the default scales); the engine pads.
            img1: ``(B, 3, H, W)``, the frame at t = 1, same dtype/device.
            timestep: t in [0, 1]: a float, or a ``(B,)`` / ``(B, 1, 1, 1)`` tensor (one t per batch item).
            scales: downsampling factor of each of the five blocks, coarse to fine (``SCALES / scale`` for
                RIFE's ``scale`` knob: use ``scale=0.5`` for 4K).
            feat0, feat1: ``(B, 4, H, W)`` precomputed :class:`FeatureEncoder` outputs of img0 / img1, so that a frame
                shared by several calls (several t, consecutive pairs) is encoded once.

        Returns:
            :class:`IFNetOutput`.

        Raises:
            ValueError: if the two frames' shapes differ, they are not ``(B, 3, H, W)``, or ``len(scales) != 5``.
        """
        if img0.shape != img1.shape or img0.dim() != 4 or img0.shape[1] != 3:
            raise ValueError(f"IFNet: img0 {tuple(img0.shape)} and img1 {tuple(img1.shape)} must both be (B, 3, H, W)")
        if len(scales) != len(self.blocks):
            raise ValueError(f"IFNet: expected {len(self.blocks)} scales, got {scales}")
        batch, _, height, width = img0.shape
        t = torch.as_tensor(timestep, dtype=img0.dtype, device=img0.device).reshape(-1, 1, 1, 1)
        t = t.expand(batch, 1, height, width)
        f0 = self.encode(img0) if feat0 is None else feat0
        f1 = self.encode(img1) if feat1 is None else feat1

        flow = mask = context = None
        warped0, warped1 = img0, img1
        for block, scale in zip(self.blocks, scales):
            if flow is None:
                flow, mask, context = block(torch.cat((img0, img1, f0, f1, t), 1), None, scale)
            else:
                wf0 = backward_warp(f0, flow[:, :2])
                wf1 = backward_warp(f1, flow[:, 2:4])
                x = torch.cat((warped0, warped1, wf0, wf1, t, mask, context), 1)
                d_flow, mask, context = block(x, flow, scale)
                flow = flow + d_flow
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        frame = warped0 * mask + warped1 * (1 - mask)
        return IFNetOutput(frame=frame, flow=flow, mask=mask, warped0=warped0, warped1=warped1)

    def forward_stacks(self, stack0: torch.Tensor, stack1: torch.Tensor, timestep: torch.Tensor, *,
                       scales: tuple[float, ...]) -> torch.Tensor:
        """:meth:`forward` on ``(1, 7, H, W)`` prepared frames (:meth:`encode_frame`) for the B timesteps
        ``timestep`` ``(B,)``: ``(B, 3, H, W)`` Î_t (the engine's plain path, for scales the sparse path does not
        take)."""
        n = timestep.shape[0]
        return self(stack0[:, :3].expand(n, -1, -1, -1), stack1[:, :3].expand(n, -1, -1, -1), timestep,
                    scales=scales, feat0=stack0[:, 3:].expand(n, -1, -1, -1),
                    feat1=stack1[:, 3:].expand(n, -1, -1, -1)).frame

    # -- the fast path (retime.interpolate._sparse): forward()'s frame, computed only where it is read ------------
    supports_sparse = staticmethod(_sparse.supports_sparse)

    def _sparse_blocks(self, dtype: torch.dtype, device: torch.device) -> list[nn.Sequential]:
        """The IFBlocks as :meth:`forward_sparse` runs them (``_sparse.sparse_blocks``): each first convolution reads
        the pair layout (``_sparse._PAIR_ORDER``), and the last block computes only the flow and mask channels (the 8
        context channels are never read)."""
        last = len(self.blocks) - 1
        return _sparse.sparse_blocks(self, self.blocks, dtype, device, reorder=True,
                                     head_channels=[None] * last + [20])

    def forward_sparse(self, stack0: torch.Tensor, stack1: torch.Tensor, timestep: torch.Tensor, *,
                       scales: tuple[float, ...] = SCALES, conv_dtype: torch.dtype | None = None) -> torch.Tensor:
        """The interpolated frame Î_t (paper eq. 1), computed as :meth:`forward` does but only where it is read.

        Inference only: its converted blocks need no gradient, and it writes into preallocated tensors (``out=``,
        in place) that autograd cannot follow, so stacks that require gradients are refused by PyTorch; train
        through :meth:`forward`.

        Args:
            stack0, stack1: ``(1, 7, H, W)`` float32 (or float16) outputs of :meth:`encode_frame` for I_0 and I_1,
                H and W multiples of ``4 * max(scales)``.
            timestep: ``(B,)`` tensor of t in [0, 1]; B frames are produced.
            scales: block scales, all powers of two (:meth:`supports_sparse`).
            conv_dtype: run the blocks (convolutions and their residual additions) in this dtype
                (``torch.bfloat16`` on CPUs with AVX-512 BF16/AMX, ``torch.float16`` on CUDA; ``None``: the stacks'),
                while flows, sampling grids and warps stay in the stacks' dtype: sampling coordinates need float32's
                precision (in bfloat16 a 1280-pixel grid is off by several pixels).

        Returns:
            ``(B, 3, H, W)`` Î_t, not clamped, in the stacks' dtype.

        Raises:
            ValueError: scales not powers of two, or the stacks are not both ``(1, 7, H, W)``.
        """
        return _sparse.forward_sparse(self, stack0, stack1, timestep, scales=scales, conv_dtype=conv_dtype)
