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

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from retime.interpolate.warp import backward_warp, grid_step

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
        # in place: each activation overwrites its convolution's output (at 1280x720 one 16 MB map less alive)
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


class FoldedResConv(nn.Module):
    """:class:`ResConv` as the fast path runs it: β folded into the convolution, ``LeakyReLU(conv_β(x) + x)``.

    ``conv(x)·β`` is the convolution with each output channel's weights and bias scaled by β, so the residual
    addition and the activation run in place on the convolution's own output: one full-size temporary instead of
    three (the product, the sum and the activation) and two passes over memory instead of three.
    ``(B, C, H, W)`` → ``(B, C, H, W)``, same dtype. Equal to :class:`ResConv` up to float rounding.
    """

    def __init__(self, res: ResConv) -> None:
        super().__init__()
        conv = res.conv
        beta = res.beta.detach().reshape(-1)
        self.conv = _inference_conv(nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, device="meta"),
                                    conv.weight.detach() * beta[:, None, None, None], conv.bias.detach() * beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu_(self.conv(x).add_(x), 0.2)


def _inference_conv(conv: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """``conv`` (made on the ``meta`` device, so that building it draws nothing from torch's random generator) with
    the given weight and bias as parameters that need no gradient: the fast path's converted layers."""
    conv.weight = nn.Parameter(weight, requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)
    return conv


def sparse_blocks(model: nn.Module, blocks: tuple[nn.Module, ...], dtype: torch.dtype, device: torch.device, *,
                  reorder: bool, head_channels: list[int | None]) -> list[nn.Sequential]:
    """Copies of ``blocks`` (:class:`IFBlock`) as a fast path runs them: in ``dtype``, channels-last, β folded.

    Converting once instead of under autocast at every call saves the weight casts; keeping the whole trunk in
    ``dtype`` saves casting the activations between the convolutions and the residual additions. Cached on
    ``model`` and rebuilt when one of its parameters is changed in place (its version counter moves) or replaced;
    the submodules are listed once (walking them at every call cost as much as a small frame's warps).

    Args:
        reorder: the first convolution reads its image channels in the pair layout (:data:`_PAIR_ORDER`, 4.2x).
        head_channels: per block, the output channels (before the pixel shuffle) to keep, or ``None`` for all:
            4 per channel after the shuffle, so 20 keeps flow and mask.

    Returns:
        One ``nn.Sequential(conv0, trunk, head, PixelShuffle(2))`` per block.
    """
    modules = model.__dict__.setdefault("_module_list", list(model.modules()))
    key = (dtype, device, tuple((id(p), p._version) for m in modules for p in m._parameters.values()
                                if p is not None))
    cache = model.__dict__.setdefault("_sparse_cache", {})
    if key not in cache:
        cache.clear()
        copies = []
        for block, keep in zip(blocks, head_channels):
            block = copy.deepcopy(block).requires_grad_(False)
            if reorder:
                first = block.conv0[0][0]
                first.weight.data = first.weight.data[:, _pair_order(first.in_channels, first.weight.device)]
            head = block.lastconv[0]
            if keep is not None:
                head = _inference_conv(nn.ConvTranspose2d(head.in_channels, keep, 4, 2, 1, device="meta"),
                                       head.weight.detach()[:, :keep], head.bias.detach()[:keep])
            trunk = nn.Sequential(*(FoldedResConv(res) for res in block.convblock))
            copies.append(nn.Sequential(block.conv0, trunk, head, nn.PixelShuffle(2))
                          .to(device=device, dtype=dtype, memory_format=torch.channels_last).eval())
        cache[key] = copies
    return cache[key]


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

    # ------------------------------------------------------------------------------------------------------------
    # The fast path. It computes what forward() computes, without the full-resolution glue.
    #
    # forward() follows the reference: every block upsamples its 13 output channels to full resolution, and the
    # next block warps images and features at full resolution, concatenates 28 full-resolution channels and then
    # downsamples them by s with bilinear interpolation. With align_corners=False and an integer factor s, that
    # downsampling reads only two rows and two columns per output pixel: rows s*q + s/2 - 1 and s*q + s/2, each
    # weighted 1/2 (PyTorch maps output q to input s*q + (s - 1)/2). So block i needs its inputs at only those
    # "taps", a (2H/s, 2W/s) grid. forward_sparse() evaluates the flows, the mask and context (bilinear upsampling
    # of coarser maps = grid_sample at the taps) and the warps at the taps alone, and averages each 2x2 group of taps
    # (_halve), which is the bilinear downsampling. The last block's 8 context channels are never used, so its
    # output layer computes only flow and mask. Equal to forward() up to float rounding (see tests).
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def supports_sparse(scales: tuple[float, ...]) -> bool:
        """``True`` when every block scale is a power of two (the taps above then lie on whole pixels)."""
        return all(float(s).is_integer() and int(s) >= 1 and (int(s) & (int(s) - 1)) == 0 for s in scales)

    def _sparse_blocks(self, dtype: torch.dtype, device: torch.device) -> list[nn.Sequential]:
        """The IFBlocks as :meth:`forward_sparse` runs them (:func:`sparse_blocks`): each first convolution reads
        the pair layout (:data:`_PAIR_ORDER`), and the last block computes only the flow and mask channels (the 8
        context channels are never read)."""
        last = len(self.blocks) - 1
        return sparse_blocks(self, self.blocks, dtype, device, reorder=True,
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
        check_sparse_inputs(self, stack0, stack1, scales)
        stacks = (stack0, stack1)
        batch = timestep.shape[0]
        _, _, height, width = stack0.shape
        t = timestep.to(stack0.dtype).reshape(-1, 1, 1, 1)
        dtype = conv_dtype or stack0.dtype
        blocks = self._sparse_blocks(dtype, stack0.device)
        # Flow residuals (scale, low-resolution residual) of the blocks not yet summed into full_flow, the flow at
        # full resolution (from the first block at s <= 2 on). Each temporary is dropped as soon as it has been
        # read, so that at 1280x720 a call holds little more than the two stacks (docs/performance.md, memory).
        deltas: list[tuple[int, torch.Tensor]] = []
        full_flow = out = raw = None
        previous = 0  # the previous block's scale
        for i, scale in enumerate(scales):
            s = int(scale)
            if i == 0:
                low = [_downsample(stack, s) for stack in stacks]
                x = _new_input(batch, 15, *low[0].shape[2:], dtype, stack0.device)
                x[:, 0:7].copy_(low[0])  # I_0 ‖ features_0 ‖ I_1 ‖ features_1 ‖ t (the pair layout)
                x[:, 7:14].copy_(low[1])
                x[:, 14:15].copy_(t)
                del low
            else:
                if s <= 2:  # the taps are every full-resolution pixel: plain upsampling, and the sum is kept
                    full_flow = _accumulate(full_flow, deltas)
                    flow, out = full_flow, None
                    if s == 1 and i == len(scales) - 1:  # full resolution: built and convolved band by band
                        handed = [raw[:, 4:]]  # the only reference to the previous output: freed once read
                        del raw
                        raw = _run_banded(blocks[i], stacks, flow, handed, previous, t,
                                          _tap_grid(height, width, 1, stack0))
                        break
                    # _halve(upsample by 2m) == upsample by m for even m, so the context of a block at s = 2
                    # is upsampled straight to its resolution, never to full resolution.
                    # From the block's own (convolution dtype, channels-last) output: the copy into x below then
                    # needs no conversion or layout change.
                    context = _upsample(raw[:, 4:], previous // s)
                    pooled = _halve(flow) if s == 2 else flow
                else:
                    up = _upsample_grid(height, width, s, stack0)
                    flow = sum(_sample_up(d, up) * sd for sd, d in deltas)
                    context = _halve(_sample_up(out[:, 4:], up))  # mask logit and context of the previous block
                    pooled = _halve(flow)
                x = _new_input(batch, 28, *context.shape[2:], dtype, stack0.device)
                _warp_into(stacks, flow, _tap_grid(height, width, s, stack0), x[:, :14], 1 if s == 1 else 2)
                x[:, 14:15].copy_(t)
                x[:, 15:24].copy_(context)
                x[:, 24:28].copy_(pooled if s == 1 else pooled / s)
                del flow, context, pooled
            handed = [x]
            del x
            raw = _run_block(blocks[i], handed)  # (B, 13, h, w) (last block: 5), convolution dtype, channels-last
            if i < len(scales) - 1:
                # a float contiguous copy of what is read from it: the flow residual, and the mask logit and
                # context when the next block samples them with grid_sample (s > 2); at s <= 2 they are read
                # from raw itself
                read = raw if int(scales[i + 1]) > 2 else raw[:, :4]
                out = read.to(stack0.dtype, memory_format=torch.contiguous_format)
                deltas.append((s, out[:, :4]))
            previous = s

        s = int(scales[-1])
        if s == 1:  # the banded last block's output before its pixel shuffle, read through the shuffle's view
            shuffled = _shuffled(raw)
            _as_shuffled(full_flow).add_(shuffled[:, :4])
            mask = torch.empty((batch, 1, height, width), dtype=stack0.dtype, device=stack0.device)
            _as_shuffled(mask).copy_(shuffled[:, 4:5])
            mask.sigmoid_()
            del shuffled
        else:
            out = raw.to(stack0.dtype, memory_format=torch.contiguous_format)
            deltas.append((s, out[:, :4]))
            mask = torch.sigmoid(_upsample(out[:, 4:5], s))
        flow = _accumulate(full_flow, deltas)  # s == 1: nothing left to add
        del full_flow, out, raw
        return _blend(stacks, flow, mask, _tap_grid(height, width, 1, stack0))


def check_sparse_inputs(model: nn.Module, stack0: torch.Tensor, stack1: torch.Tensor,
                        scales: tuple[float, ...]) -> None:
    """The checks at a fast path's boundary: one power-of-two scale per block of ``model`` (``IFNet``,
    ``IFNet46``), and two ``(1, model.stack_channels, H, W)`` stacks of one shape.

    Raises:
        ValueError: naming what was given.
    """
    n, c = len(model.blocks), model.stack_channels
    if not IFNet.supports_sparse(scales) or len(scales) != n:
        raise ValueError(f"forward_sparse needs {n} power-of-two scales, got {scales}")
    if stack0.shape != stack1.shape or stack0.dim() != 4 or stack0.shape[:2] != (1, c):
        raise ValueError(f"stacks {tuple(stack0.shape)} and {tuple(stack1.shape)} must both be (1, {c}, H, W)")


#: Input channels of blocks 1-4 in the checkpoint's order: W(I_0), W(I_1), W(features_0), W(features_1), then t,
#: mask logit, context, flow (block 0: I_0, I_1, features_0, features_1, t). The sparse path assembles each frame's
#: image and features side by side (the pair's layout), so it reads the first convolution's weights in this order.
_PAIR_ORDER = (0, 1, 2, 6, 7, 8, 9, 3, 4, 5, 10, 11, 12, 13)
_ORDER_CACHE: dict[tuple, torch.Tensor] = {}


def _pair_order(in_channels: int, device: torch.device) -> torch.Tensor:
    """Index of each pair-layout input channel in the checkpoint's layout, for a first convolution's weight."""
    key = (in_channels, device)
    if key not in _ORDER_CACHE:
        _ORDER_CACHE[key] = torch.tensor(_PAIR_ORDER + tuple(range(14, in_channels)), device=device)
    return _ORDER_CACHE[key]


def _new_input(batch: int, channels: int, height: int, width: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """An uninitialised block input ``(B, C, h, w)`` in ``dtype``, channels-last.

    The sparse path writes each part (warps, t, context, flow) straight into it, which fuses the concatenation, the
    dtype conversion and the layout change that oneDNN's convolutions want (a channels-last bfloat16 first
    convolution measured 6x faster than a contiguous one).
    """
    return torch.empty((batch, channels, height, width), dtype=dtype, device=device,
                       memory_format=torch.channels_last)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """The mean of each 2x2 block: ``(B, C, h, w)`` → ``(B, C, h/2, w/2)``.

    Bilinear downsampling by exactly 2 (align_corners=False) weights the two rows and two columns under each output
    pixel by 1/2 each, so it is this mean; PyTorch's bilinear kernel computes it 3-4x faster than ``avg_pool2d``.
    """
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor, s: int) -> torch.Tensor:
    """Bilinear downsampling by ``s`` (1 or even; align_corners=False), as each reference IFBlock resizes its input.

    Output pixel q reads rows and columns s*q + s/2 - 1 and s*q + s/2, each weighted 1/2, so this averages four
    strided views of ``x``: it reads 4/s² of it. PyTorch's bilinear kernel first copies the whole input (a
    ``contiguous()`` clone of the 7-channel stack: 2.9 ms of the 80 ms call at 640x360, docs/performance.md).
    """
    if s == 1:
        return x
    a, b = s // 2 - 1, s // 2
    return (x[:, :, a::s, a::s] + x[:, :, a::s, b::s] + x[:, :, b::s, a::s] + x[:, :, b::s, b::s]) * 0.25


def _upsample(low: torch.Tensor, s: int) -> torch.Tensor:
    """Bilinear upsampling by ``s`` (align_corners=False), as the reference resizes every block output."""
    return F.interpolate(low, scale_factor=s, mode="bilinear", align_corners=False) if s > 1 else low


def _accumulate(full_flow: torch.Tensor | None, deltas: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """Add the flow residuals ``deltas`` (scale, low-resolution residual), each upsampled to full resolution and
    scaled to pixels, to ``full_flow`` (in place; a new float32 tensor when it is ``None``), and empty ``deltas``.

    One full-resolution flow is alive at a time: callers must be done with the previous sum.
    """
    for s, delta in deltas:
        term = _upsample(delta * s, s) if s > 1 else delta  # scaled at low resolution: fewer values to multiply
        if full_flow is None:  # never a view of a block's output, and float32 even when the delta is not
            full_flow = term if s > 1 else term.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        else:
            full_flow.add_(term)
    deltas.clear()
    return full_flow


_GRID_CACHE: dict[tuple, torch.Tensor] = {}


def _cached(key: tuple, make) -> torch.Tensor:
    if key not in _GRID_CACHE:
        if len(_GRID_CACHE) > 64:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = make()
    return _GRID_CACHE[key]


def _tap_axes(height: int, width: int, s: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution pixel rows and columns of the bilinear-downsampling taps for factor ``s`` (all when s = 1)."""
    def axis(n: int) -> torch.Tensor:
        if s == 1:
            return torch.arange(n, device=like.device, dtype=torch.float32)
        q = torch.arange(n // s, device=like.device, dtype=torch.float32) * s
        return torch.stack((q + (s // 2 - 1), q + s // 2), 1).reshape(-1)

    return torch.meshgrid(axis(height), axis(width), indexing="ij")


def _tap_grid(height: int, width: int, s: int, like: torch.Tensor) -> torch.Tensor:
    """The taps for factor ``s`` in ``grid_sample``'s align_corners=True units over the full-resolution frame.

    ``(1, h, w, 2)`` (x first), h = 2H/s (H when s ≤ 2): ``-1`` is pixel 0 and ``+1`` pixel W-1, so that
    ``grid + flow · (2 / (W-1), 2 / (H-1))`` samples at tap + flow, as :func:`backward_warp` does.
    """
    def make() -> torch.Tensor:
        gy, gx = _tap_axes(height, width, s if s > 2 else 1, like)
        return (torch.stack((gx, gy), -1)[None] * grid_step(height, width, gx) - 1).to(like.dtype)

    return _cached(("taps", height, width, 1 if s <= 2 else s, like.device, like.dtype), make)


def _upsample_grid(height: int, width: int, s: int, like: torch.Tensor) -> torch.Tensor:
    """The taps for factor ``s`` in align_corners=False units: sampling a map of any coarser resolution R there
    equals upsampling it to full resolution by H/R with F.interpolate and reading the taps. ``(1, h, w, 2)``."""
    def make() -> torch.Tensor:
        gy, gx = _tap_axes(height, width, s, like)
        return torch.stack((2 * (gx + 0.5) / width - 1, 2 * (gy + 0.5) / height - 1), -1)[None].to(like.dtype)

    return _cached(("up", height, width, s, like.device, like.dtype), make)


def _sample_up(low: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Bilinear upsampling of ``low`` ``(B, C, h, w)`` to full resolution, read at the taps of ``up``."""
    return F.grid_sample(low, up.expand(low.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=False)


#: Rows of taps warped per ``grid_sample`` call (a band): small enough that a band's warped channels stay in the CPU
#: caches on their way into the block input, and that no full-resolution warp is ever held whole.
BAND_TAPS = 1 << 17


def _bands(rows: int, width: int, multiple: int) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges covering ``rows`` tap rows, each a multiple of ``multiple`` rows long."""
    step = max(multiple, BAND_TAPS // max(width, 1) // multiple * multiple)
    return [(r, min(r + step, rows)) for r in range(0, rows, step)]


def _sample(stack: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` of a ``(1, C, H, W)`` frame at ``grid`` ``(B, h, w, 2)``: bilinear, border, align_corners=True.

    With one grid whose row count is even, its top and bottom halves go in as a batch of two (the frame expanded,
    not copied), because PyTorch's CPU kernel parallelises over the batch only; the halves are returned stacked on
    the batch dimension, ``(2, C, h/2, w)``. Otherwise ``(B, C, h, w)``.
    """
    batch, rows, width, _ = grid.shape
    if batch == 1 and rows % 2 == 0:
        grid = grid.view(2, rows // 2, width, 2)
    return F.grid_sample(stack.expand(grid.shape[0], -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def _grid(taps: torch.Tensor, flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sampling grid at tap + flow: ``taps`` ``(1, h, w, 2)`` (:func:`_tap_grid`), ``flow`` ``(B, 2, h, w)`` pixels."""
    return torch.addcmul(taps, flow.permute(0, 2, 3, 1), grid_step(*size, flow))


def _rows_of(sampled: torch.Tensor, batch: int) -> list[tuple[int, torch.Tensor]]:
    """Split :func:`_sample`'s result into ``(row offset, (B, C, h, w) rows)`` pieces in row order."""
    if sampled.shape[0] == batch:
        return [(0, sampled)]
    half = sampled.shape[2]
    return [(0, sampled[0:1]), (half, sampled[1:2])]


def _warp_into(stacks: tuple[torch.Tensor, torch.Tensor], flow: torch.Tensor, taps: torch.Tensor, dst: torch.Tensor,
               group: int) -> None:
    """Write W(I_0 ‖ features_0, F_t→0) ‖ W(I_1 ‖ features_1, F_t→1) at the taps into ``dst``, band by band.

    Args:
        stacks: the two ``(1, C, H, W)`` frames.
        flow: ``(B, 4, h, w)`` F_t→0 and F_t→1 at the taps, in pixels.
        taps: ``(1, h, w, 2)`` :func:`_tap_grid`.
        dst: ``(B, 2C, h / group, w / group)`` view of the block input (any dtype and strides), C the stacks'
            channels (7 for 4.2x's image and features, 3 for RIFE 4.6's image).
        group: 1, or 2 to average each 2x2 group of taps (the block's bilinear downsampling, :func:`_halve`).

    Sampling is bilinear with border padding and align_corners=True, as :func:`backward_warp`.
    """
    batch, _, rows, width = flow.shape
    size = stacks[0].shape[2:]
    for start, stop in _bands(rows, width, 2 * group):
        for k, stack in enumerate(stacks):
            sampled = _sample(stack, _grid(taps[:, start:stop], flow[:, 2 * k:2 * k + 2, start:stop], size))
            if group == 2:
                sampled = _halve(sampled)
            for offset, piece in _rows_of(sampled, batch):
                first = (start // group) + offset
                # converting first halves the bytes that the layout change (contiguous → channels-last) moves
                c = stack.shape[1]
                dst[:, c * k:c * k + c, first:first + piece.shape[2]].copy_(piece.to(dst.dtype))


def _upsample_rows(low: torch.Tensor, m: int, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of ``_upsample(low, m)``, computed from the few rows of ``low`` they read.

    Bilinear upsampling by ``m`` (align_corners=False) maps output row y to input row (y + 0.5) / m - 0.5; a slice of
    ``low`` starting at row k maps the same way shifted by k, and its clamping at the slice's edges only touches
    rows outside ``start:stop`` (one input row of margin either side), so the rows equal the whole upsampling's.
    """
    rows = low.shape[2]
    first = max(math.floor((start + 0.5) / m - 0.5), 0)
    last = min(math.floor((stop - 0.5) / m - 0.5) + 2, rows)
    up = _upsample(low[:, :, first:last], m)
    return up[:, :, start - m * first:stop - m * first]


def _upsample2_rows_into(low: torch.Tensor, start: int, stop: int, out: torch.Tensor) -> None:
    """Write rows ``start:stop`` (both even) of ``_upsample(low, 2)`` into ``out`` ``(B, C, stop - start, 2w)``.

    Bilinear upsampling by 2 (align_corners=False) gives output row 2k the weights 1/4, 3/4 on input rows k - 1, k
    and row 2k + 1 the weights 3/4, 1/4 on rows k, k + 1 (indices clamped to the edges), and the same along the
    columns. Computed in float32 from ``low``'s few rows and written once into ``out`` (any dtype and layout);
    equal to :func:`_upsample_rows` and about twice as fast on a block's channels-last bfloat16 output, which
    PyTorch's kernel first copies to another layout.
    """
    rows = low.shape[2]
    k0, k1 = start // 2, stop // 2
    band = low[:, :, max(k0 - 1, 0):min(k1 + 1, rows)].float()
    if k0 == 0:  # clamp: the row above the first is the first
        band = torch.cat((band[:, :, :1], band), 2)
    if k1 == rows:
        band = torch.cat((band, band[:, :, -1:]), 2)
    band = torch.cat((band[..., :1], band, band[..., -1:]), 3)
    n = k1 - k0
    middle = band[:, :, 1:n + 1]
    above, below = torch.lerp(band[:, :, 0:n], middle, 0.75), torch.lerp(band[:, :, 2:n + 2], middle, 0.75)
    for phase, up in ((0, above), (1, below)):  # output rows 2k (from rows k - 1, k) and 2k + 1 (from k, k + 1)
        centre = up[..., 1:-1]
        out[:, :, phase::2, 0::2].copy_(torch.lerp(up[..., :-2], centre, 0.75))
        out[:, :, phase::2, 1::2].copy_(torch.lerp(up[..., 2:], centre, 0.75))


def _run_block(block: nn.Sequential, handed: list[torch.Tensor]) -> torch.Tensor:
    """Run a :meth:`IFNet._sparse_blocks` copy on ``handed.pop()``, its input, which is freed after the first
    convolution: the caller hands over its only reference in the list (at 1280x720 the input of the block at s = 2
    is 28 channels at 640x384, 27.5 MB in float32, and would otherwise live through the whole block)."""
    x = handed.pop()
    conv0, trunk, head, shuffle = block
    x = conv0[0](x)
    return shuffle(head(trunk(conv0[1](x))))


def _run_banded(block: nn.Sequential, stacks: tuple[torch.Tensor, torch.Tensor], flow: torch.Tensor,
                handed: list[torch.Tensor], context_scale: int, t: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Run a block at s = 1 (full resolution) without ever holding its full-resolution input.

    The block's input (warped images and features, t, the previous block's mask logit and context upsampled by
    ``context_scale``, the flow; 28 channels, 55 MB in bfloat16 at 1280x720) is built a band of rows at a time, and
    each band goes straight through the block's first convolution (3x3, stride 2, zero padding 1). Output row r of
    that convolution reads input rows 2r - 1 … 2r + 1, so a band of input rows a … b - 1 (a, b even) preceded by row
    a - 1 (zeros above row 0: the padding) gives output rows a/2 … b/2 - 1 exactly; row a - 1 is carried over from
    the previous band. The rest of the block runs on the half-resolution result as usual.

    Args:
        block: a :meth:`IFNet._sparse_blocks` copy (first convolution in the pair layout, convolution dtype).
        stacks: the two ``(1, 7, H, W)`` frames; flow: ``(B, 4, H, W)`` float32 in pixels;
        handed: ``[context]``, the previous block's mask logit and context ``(B, 9, H / context_scale,
            W / context_scale)``, the caller's only reference to it: popped, and freed once the bands are built;
        t: ``(B, 1, 1, 1)``; taps: ``(1, H, W, 2)`` :func:`_tap_grid` at s = 1.

    Returns:
        ``(B, 4C, H/2, W/2)`` the block's output *before* its pixel shuffle (20 channels for the pruned last block,
        read through :func:`_shuffled`), in its dtype, channels-last. Each stage's input is dropped once read.
    """
    first = block[0][0][0]
    batch, _, height, width = flow.shape
    dtype = first.weight.dtype
    context = handed.pop()
    half = torch.empty((batch, first.out_channels, height // 2, width // 2), dtype=dtype, device=flow.device,
                       memory_format=torch.channels_last)
    bands = _bands(height, width, 2)
    buffer = _new_input(batch, first.in_channels, bands[0][1] - bands[0][0] + 1, width, dtype, flow.device)
    buffer[:, :, 0].zero_()  # the convolution's zero padding above row 0
    previous = 0
    for start, stop in bands:
        if previous:
            buffer[:, :, 0].copy_(buffer[:, :, previous])  # input row start - 1, the last of the previous band
        x = buffer[:, :, :stop - start + 1]
        body = x[:, :, 1:]
        _warp_into(stacks, flow[:, :, start:stop], taps[:, start:stop], body[:, :14], 1)
        body[:, 14:15].copy_(t)
        if context_scale == 2:
            _upsample2_rows_into(context, start, stop, body[:, 15:24])
        else:
            body[:, 15:24].copy_(_upsample_rows(context, context_scale, start, stop))
        body[:, 24:28].copy_(flow[:, :, start:stop])
        y = F.conv2d(x, first.weight, first.bias, stride=2, padding=(0, 1))
        half[:, :, start // 2:stop // 2].copy_(F.leaky_relu_(y, 0.2))
        previous = stop - start
    del context, buffer, x, body, y
    conv0, trunk, head, _ = block
    x = conv0[1](half)  # the second stride-2 convolution on, as IFBlock runs them
    del half
    return head(trunk(x))


def _shuffled(raw: torch.Tensor) -> torch.Tensor:
    """``pixel_shuffle(raw, 2)`` as a view: ``(B, 4C, h, w)`` → ``(B, C, h, 2, w, 2)``, whose ``(h, 2)`` and
    ``(w, 2)`` dimensions are the rows and columns of the ``(B, C, 2h, 2w)`` result (output pixel (2y + i, 2x + j) of
    channel c is input channel 4c + 2i + j at (y, x)). Read through it, the shuffle is never materialised."""
    batch, channels, height, width = raw.shape
    return raw.view(batch, channels // 4, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)


def _as_shuffled(full: torch.Tensor) -> torch.Tensor:
    """A contiguous ``(B, C, H, W)`` tensor viewed as ``(B, C, H/2, 2, W/2, 2)``, to meet :func:`_shuffled`."""
    batch, channels, height, width = full.shape
    return full.view(batch, channels, height // 2, 2, width // 2, 2)


def _blend(stacks: tuple[torch.Tensor, torch.Tensor], flow: torch.Tensor, mask: torch.Tensor, taps: torch.Tensor
           ) -> torch.Tensor:
    """Î_t = M ⊙ W(I_0, F_t→0) + (1 − M) ⊙ W(I_1, F_t→1) (RIFE eq. 1), band by band: ``(B, 3, H, W)``.

    ``flow`` ``(B, 4, H, W)`` final flows in pixels, ``mask`` ``(B, 1, H, W)`` fusion mask M in (0, 1).
    """
    batch, _, rows, width = flow.shape
    size = stacks[0].shape[2:]
    frame = torch.empty((batch, 3, rows, width), dtype=flow.dtype, device=flow.device)
    for start, stop in _bands(rows, width, 2):
        warped = [_rows_of(_sample(stack[:, :3], _grid(taps[:, start:stop], flow[:, 2 * k:2 * k + 2, start:stop],
                                                         size)), batch) for k, stack in enumerate(stacks)]
        for (offset, w0), (_, w1) in zip(*warped):
            first = start + offset
            last = first + w0.shape[2]
            torch.lerp(w1, w0, mask[:, :, first:last], out=frame[:, :, first:last])
    return frame
