"""The fast path of IFNet (4.2x): what :meth:`IFNet.forward <retime.interpolate.ifnet.IFNet.forward>` computes,
without the full-resolution glue, and the blocks converted for it (shared with RIFE 4.6's fast path).

``forward()`` follows the reference: every block upsamples its 13 output channels to full resolution, and the next
block warps images and features at full resolution, concatenates 28 full-resolution channels and then downsamples
them by s with bilinear interpolation. With align_corners=False and an integer factor s, that downsampling reads only
two rows and two columns per output pixel: rows s*q + s/2 - 1 and s*q + s/2, each weighted 1/2 (PyTorch maps output
q to input s*q + (s - 1)/2). So block i needs its inputs at only those "taps", a (2H/s, 2W/s) grid.
:func:`forward_sparse` evaluates the flows, the mask and context (bilinear upsampling of coarser maps = grid_sample at
the taps) and the warps at the taps alone (:mod:`retime.interpolate._taps`), and averages each 2x2 group of taps
(``_halve``), which is the bilinear downsampling. The last block's 8 context channels are never used, so its output
layer computes only flow and mask. Equal to ``forward()`` up to float rounding (see tests).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from retime.interpolate._taps import (_bands, _blend, _downsample, _halve, _new_input, _sample_up, _tap_grid,
                                      _upsample, _upsample2_rows_into, _upsample_grid, _upsample_rows, _warp_into)

if TYPE_CHECKING:
    from retime.interpolate.ifnet import ResConv


def supports_sparse(scales: tuple[float, ...]) -> bool:
    """``True`` when every block scale is a power of two (the taps then lie on whole pixels)."""
    return all(float(s).is_integer() and int(s) >= 1 and (int(s) & (int(s) - 1)) == 0 for s in scales)


def check_sparse_inputs(model: nn.Module, stack0: torch.Tensor, stack1: torch.Tensor,
                        scales: tuple[float, ...]) -> None:
    """The checks at a fast path's boundary: one power-of-two scale per block of ``model`` (``IFNet``,
    ``IFNet46``), and two ``(1, model.stack_channels, H, W)`` stacks of one shape.

    Raises:
        ValueError: naming what was given.
    """
    n, c = len(model.blocks), model.stack_channels
    if not supports_sparse(scales) or len(scales) != n:
        raise ValueError(f"forward_sparse needs {n} power-of-two scales, got {scales}")
    if stack0.shape != stack1.shape or stack0.dim() != 4 or stack0.shape[:2] != (1, c):
        raise ValueError(f"stacks {tuple(stack0.shape)} and {tuple(stack1.shape)} must both be (1, {c}, H, W)")


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


def forward_sparse(model: nn.Module, stack0: torch.Tensor, stack1: torch.Tensor, timestep: torch.Tensor, *,
                   scales: tuple[float, ...], conv_dtype: torch.dtype | None = None) -> torch.Tensor:
    """:meth:`IFNet.forward_sparse <retime.interpolate.ifnet.IFNet.forward_sparse>` of ``model`` (an ``IFNet``)."""
    check_sparse_inputs(model, stack0, stack1, scales)
    stacks = (stack0, stack1)
    batch = timestep.shape[0]
    _, _, height, width = stack0.shape
    t = timestep.to(stack0.dtype).reshape(-1, 1, 1, 1)
    dtype = conv_dtype or stack0.dtype
    blocks = model._sparse_blocks(dtype, stack0.device)
    # Flow residuals (scale, low-resolution residual) of the blocks not yet summed into full_flow, the flow at
    # full resolution (from the first block at s <= 2 on). Each temporary is dropped as soon as it has been
    # read, so that at 1280x720 a call holds little more than the two stacks (docs/performance.md, "Memory").
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
    ``context_scale``, the flow; 28 channels, 55 MB in bfloat16 at 1280x720) is built a band of rows at a time and
    each band goes straight through the block's first convolution (:func:`_convolve_banded`).

    Args:
        block: a :meth:`IFNet._sparse_blocks` copy (first convolution in the pair layout, convolution dtype).
        stacks: the two ``(1, 7, H, W)`` frames; flow: ``(B, 4, H, W)`` float32 in pixels;
        handed: ``[context]``, the previous block's mask logit and context ``(B, 9, H / context_scale,
            W / context_scale)``, the caller's only reference to it: popped, and freed when the block has run;
        t: ``(B, 1, 1, 1)``; taps: ``(1, H, W, 2)`` :func:`_tap_grid` at s = 1.

    Returns:
        ``(B, 4C, H/2, W/2)`` the block's output *before* its pixel shuffle (20 channels for the pruned last block,
        read through :func:`_shuffled`), in its dtype, channels-last. Each stage's input is dropped once read.
    """
    batch, _, height, width = flow.shape
    context = handed.pop()

    def fill(body: torch.Tensor, start: int, stop: int) -> None:
        _warp_into(stacks, flow[:, :, start:stop], taps[:, start:stop], body[:, :14], 1)
        body[:, 14:15].copy_(t)
        if context_scale == 2:
            _upsample2_rows_into(context, start, stop, body[:, 15:24])
        else:
            body[:, 15:24].copy_(_upsample_rows(context, context_scale, start, stop))
        body[:, 24:28].copy_(flow[:, :, start:stop])

    return _convolve_banded(block, fill, batch, height, width, _bands(height, width, 2), flow.device)


def _convolve_banded(block: nn.Sequential, fill, batch: int, height: int, width: int,
                     bands: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """Run a block at full resolution whose input is written band by band by ``fill(body, start, stop)`` (rows
    ``start:stop`` of the ``(batch, C_in, H, W)`` input into ``body``, a channels-last view in the block's dtype).

    Each band goes straight through the block's first convolution (3x3, stride 2, zero padding 1): output row r reads
    input rows 2r - 1 … 2r + 1, so a band of rows a … b - 1 (a, b even) preceded by row a - 1 (zeros above row 0:
    the padding) gives output rows a/2 … b/2 - 1 exactly; row a - 1 is carried over from the previous band. The rest
    of the block runs on the half-resolution result as usual. Returns the block's output before its pixel shuffle,
    in its dtype, channels-last.
    """
    first = block[0][0][0]
    dtype = first.weight.dtype
    half = torch.empty((batch, first.out_channels, height // 2, width // 2), dtype=dtype, device=device,
                       memory_format=torch.channels_last)
    buffer = _new_input(batch, first.in_channels, max(b - a for a, b in bands) + 1, width, dtype, device)
    buffer[:, :, 0].zero_()  # the convolution's zero padding above row 0
    previous = 0
    for start, stop in bands:
        if previous:
            buffer[:, :, 0].copy_(buffer[:, :, previous])  # input row start - 1, the last of the previous band
        x = buffer[:, :, :stop - start + 1]
        fill(x[:, :, 1:], start, stop)
        y = F.conv2d(x, first.weight, first.bias, stride=2, padding=(0, 1))
        half[:, :, start // 2:stop // 2].copy_(F.leaky_relu_(y, 0.2))
        previous = stop - start
    del buffer, x, y
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
