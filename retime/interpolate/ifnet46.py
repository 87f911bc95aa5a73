"""IFNet of RIFE 4.6 (Practical-RIFE v4.6, hzwer), laid out to load its checkpoint (``block0-3.*``).

Source: Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022
(arXiv:2011.06294), section 3, as revised in Practical-RIFE 4.6: four :class:`~retime.interpolate.ifnet.IFBlock`
stages of 192/128/96/64 channels at downsampling factors 8, 4, 2, 1, no feature encoder, and a fusion mask that is
*accumulated* over the blocks like the flow (each block predicts a residual to both). The frame at t is still
(paper, eq. 1)

    Î_t = M ⊙ W(I_0, F_t→0) + (1 − M) ⊙ W(I_1, F_t→1),    M = sigmoid(Σ mask residuals).

Ensembling (the model's own test-time averaging): each block also runs on the time-reversed problem (I_1, I_0,
1 − t, the flows swapped, the mask logit negated), and its residuals are averaged with the forward ones.

Pure: no files, devices or CLI; the device and dtype come from the inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from retime.interpolate._sparse import _convolve_banded, _run_block, check_sparse_inputs, sparse_blocks
from retime.interpolate._taps import (_bands, _blend, _downsample, _halve, _new_input, _sample_up, _tap_grid,
                                      _upsample, _upsample_grid, _upsample_rows, _warp_into)
from retime.interpolate.ifnet import IFBlock, IFNet, IFNetOutput
from retime.interpolate.warp import backward_warp

__all__ = ["IFNet46", "SCALES_46", "STRIDE_46"]

#: The coarse-to-fine downsampling factors of the four blocks at ``scale=1``.
SCALES_46 = (8.0, 4.0, 2.0, 1.0)
#: Input height and width must be multiples of this at ``scale=1`` (1/8, then two stride-2 convolutions).
STRIDE_46 = 32


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """``(B, 4, H, W)`` F_t→0 ‖ F_t→1 → F_t→1 ‖ F_t→0: the flows of the time-reversed problem."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class IFNet46(nn.Module):
    """RIFE 4.6's intermediate-flow network: four IFBlocks, no encoder.

    The same engine interface as :class:`~retime.interpolate.ifnet.IFNet`: :meth:`encode_frame` (here the image
    itself), :meth:`forward`, :meth:`forward_stacks`, :meth:`forward_sparse`.
    """

    #: Channels of a prepared frame (:meth:`encode_frame`): the image alone.
    stack_channels = 3
    #: Default block scales and the stride they need.
    default_scales = SCALES_46
    stride = STRIDE_46
    #: The model has its own ensembling (block-level time reversal).
    native_ensemble = True

    def __init__(self) -> None:
        super().__init__()
        # block 0 sees I0, I1, t (3+3+1); blocks 1-3 the warped images, t, the mask logit (8) and the flow (4)
        self.block0 = IFBlock(7, 192, outputs=6)
        self.block1 = IFBlock(12, 128, outputs=6)
        self.block2 = IFBlock(12, 96, outputs=6)
        self.block3 = IFBlock(12, 64, outputs=6)

    @property
    def blocks(self) -> tuple[IFBlock, ...]:
        return (self.block0, self.block1, self.block2, self.block3)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """No features: ``(B, 0, H, W)``, so that a prepared frame is the image alone."""
        return image[:, :0]

    def encode_frame(self, image: torch.Tensor) -> torch.Tensor:
        """Per-frame input of :meth:`forward_sparse`: the ``(B, 3, H, W)`` image itself."""
        return image

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5, *,
                scales: tuple[float, ...] = SCALES_46, ensemble: bool = False) -> IFNetOutput:
        """Interpolate between two frames at timestep t, as the reference implementation does.

        Args:
            img0, img1: ``(B, 3, H, W)`` float in [0, 1], the frames at t = 0 and t = 1; H and W multiples of
                ``4 * max(scales)`` (32 at the default scales; the engine pads).
            timestep: t in [0, 1]: a float, or a ``(B,)`` / ``(B, 1, 1, 1)`` tensor.
            scales: downsampling factor of each block, coarse to fine (``SCALES_46 / scale``; values below 1
                upsample, for ``scale=2``).
            ensemble: average each block's residuals with those of the time-reversed problem.

        Returns:
            :class:`~retime.interpolate.ifnet.IFNetOutput` (``mask`` is M after the sigmoid).

        Raises:
            ValueError: the frames are not both ``(B, 3, H, W)`` of one shape, or ``len(scales) != 4``.
        """
        if img0.shape != img1.shape or img0.dim() != 4 or img0.shape[1] != 3:
            raise ValueError(f"IFNet46: img0 {tuple(img0.shape)} and img1 {tuple(img1.shape)} must both be "
                             "(B, 3, H, W)")
        if len(scales) != len(self.blocks):
            raise ValueError(f"IFNet46: expected {len(self.blocks)} scales, got {scales}")
        batch, _, height, width = img0.shape
        t = torch.as_tensor(timestep, dtype=img0.dtype, device=img0.device).reshape(-1, 1, 1, 1)
        t = t.expand(batch, 1, height, width)
        flow = mask = None
        warped0, warped1 = img0, img1
        for block, scale in zip(self.blocks, scales):
            if flow is None:
                d_flow, d_mask, _ = block(torch.cat((img0, img1, t), 1), None, scale)
                if ensemble:
                    r_flow, r_mask, _ = block(torch.cat((img1, img0, 1 - t), 1), None, scale)
                    d_flow, d_mask = (d_flow + _swap(r_flow)) / 2, (d_mask - r_mask) / 2
                flow, mask = d_flow, d_mask
            else:
                d_flow, d_mask, _ = block(torch.cat((warped0, warped1, t, mask), 1), flow, scale)
                if ensemble:
                    r_flow, r_mask, _ = block(torch.cat((warped1, warped0, 1 - t, -mask), 1), _swap(flow), scale)
                    d_flow, d_mask = (d_flow + _swap(r_flow)) / 2, (d_mask - r_mask) / 2
                flow, mask = flow + d_flow, mask + d_mask
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        frame = warped0 * mask + warped1 * (1 - mask)
        return IFNetOutput(frame=frame, flow=flow, mask=mask, warped0=warped0, warped1=warped1)

    def forward_stacks(self, stack0: torch.Tensor, stack1: torch.Tensor, timestep: torch.Tensor, *,
                       scales: tuple[float, ...], ensemble: bool = False) -> torch.Tensor:
        """:meth:`forward` on ``(1, 3, H, W)`` prepared frames for the B timesteps ``timestep`` ``(B,)``:
        ``(B, 3, H, W)`` Î_t (the engine's plain path, for scales the sparse path does not take)."""
        n = timestep.shape[0]
        return self(stack0.expand(n, -1, -1, -1), stack1.expand(n, -1, -1, -1), timestep, scales=scales,
                    ensemble=ensemble).frame

    # -- the fast path: what forward() computes, only where it is read ----------------------------------------------
    # As for 4.2x (see retime.interpolate._sparse): each block reads its full-resolution inputs only at the taps of
    # its bilinear downsampling, so the flow and mask are evaluated and the frames warped there alone. The mask is
    # accumulated like the flow, so both live in one 5-channel field: flow (pixels) and mask logit.
    supports_sparse = staticmethod(IFNet.supports_sparse)

    def _sparse_blocks(self, dtype: torch.dtype, device: torch.device) -> list[nn.Sequential]:
        # every block's sixth output channel is never read: keep 20 of 24 (flow and mask after the shuffle)
        return sparse_blocks(self, self.blocks, dtype, device, reorder=False, head_channels=[20] * len(self.blocks))

    def forward_sparse(self, stack0: torch.Tensor, stack1: torch.Tensor, timestep: torch.Tensor, *,
                       scales: tuple[float, ...] = SCALES_46, conv_dtype: torch.dtype | None = None,
                       ensemble: bool = False) -> torch.Tensor:
        """Î_t computed as :meth:`forward` does, but only where it is read (inference only).

        Args:
            stack0, stack1: ``(1, 3, H, W)`` float32 images in [0, 1], H and W multiples of ``4 * max(scales)``.
            timestep: ``(B,)`` tensor of t in [0, 1]; B frames are produced.
            scales: block scales, all powers of two ≥ 1 (:meth:`supports_sparse`).
            conv_dtype: the blocks' dtype (bfloat16 on CPUs with AVX-512 BF16/AMX, float16 on CUDA; ``None``:
                the stacks'); flows, grids and warps stay float32.
            ensemble: the time-reversed problem runs as the second half of each block's batch.

        Returns:
            ``(B, 3, H, W)`` Î_t, not clamped, in the stacks' dtype.

        Raises:
            ValueError: scales not powers of two, or the stacks are not both ``(1, 3, H, W)``.
        """
        check_sparse_inputs(self, stack0, stack1, scales)
        stacks = (stack0, stack1)
        batch = timestep.shape[0]
        rows = 2 * batch if ensemble else batch
        _, _, height, width = stack0.shape
        device = stack0.device
        dtype = conv_dtype or stack0.dtype
        t = timestep.to(stack0.dtype).reshape(-1, 1, 1, 1)
        blocks = self._sparse_blocks(dtype, device)
        # Large frames never hold the full-resolution field: its rows are summed band by band where they are read
        # (the same additions in the same order, so the same values; docs/performance.md, memory at 1080p and 4K).
        banded = height * width >= BANDED_FIELD_PIXELS
        field_bands = _bands(height, max(1, width // FIELD_BAND), 4)  # full-resolution rows, multiples of 4
        # (scale, (B, 5, H/s, W/s) residual with the flow in full-resolution pixels) of the blocks not yet summed
        # into field, the full-resolution flow and mask logit (from the first block at s <= 2 on, unless banded)
        deltas: list[tuple[int, torch.Tensor]] = []
        field = None
        for i, scale in enumerate(scales):
            s = int(scale)
            if i == 0:
                low = [_downsample(stack, s) for stack in stacks]
                x = _new_input(rows, 7, *low[0].shape[2:], dtype, device)
                x[:batch, 0:3].copy_(low[0])
                x[:batch, 3:6].copy_(low[1])
                x[:batch, 6:7].copy_(t)
                if ensemble:
                    x[batch:, 0:3].copy_(low[1])
                    x[batch:, 3:6].copy_(low[0])
                    x[batch:, 6:7].copy_(1 - t)
                del low
                handed = [x]
                del x
                raw = _run_block(blocks[i], handed)
            else:
                if s > 2:
                    up = _upsample_grid(height, width, s, stack0)
                    at_taps = sum(_sample_up(d, up) for _, d in deltas)
                elif not banded:  # the taps are every full-resolution pixel
                    field = _accumulate(field, deltas)
                taps = _tap_grid(height, width, s, stack0)

                def fill(x: torch.Tensor, start: int, stop: int) -> None:
                    """Block input rows for tap rows ``start:stop`` (full-resolution rows when s <= 2)."""
                    if s > 2:
                        rows_taps = at_taps
                    else:
                        rows_taps = _field_rows(deltas, start, stop) if banded else field[:, :, start:stop]
                    _fill_input(stacks, rows_taps, taps[:, start:stop], x[:batch], s)
                    x[:batch, 6:7].copy_(t)
                    if ensemble:
                        _reverse_into(x, batch, t)

                if s == 1:  # full resolution: built and convolved band by band, never held whole
                    raw = _convolve_banded(blocks[i], fill, rows, height, width, field_bands, device)
                    raw = blocks[i][3](raw)  # the pixel shuffle
                else:
                    x = _new_input(rows, 12, height // s, width // s, dtype, device)
                    if s > 2:
                        fill(x, 0, at_taps.shape[2])
                        del at_taps
                    else:
                        for start, stop in field_bands if banded else [(0, height)]:
                            fill(x[:, :, start // s:stop // s], start, stop)
                    handed = [x]
                    del x
                    raw = _run_block(blocks[i], handed)
            raw = raw.to(stack0.dtype, memory_format=torch.contiguous_format)
            if ensemble:  # average with the time-reversed residuals: flows swapped back, mask logit negated
                reverse = raw[batch:]
                raw = torch.cat(((raw[:batch, :4] + _swap(reverse[:, :4])) / 2,
                                 (raw[:batch, 4:5] - reverse[:, 4:5]) / 2), 1)
            deltas.append((s, _scaled(raw, s)))
            del raw
        taps = _tap_grid(height, width, 1, stack0)
        if banded:
            frame = torch.empty((batch, 3, height, width), dtype=stack0.dtype, device=device)
            for start, stop in field_bands:
                rows_field = _field_rows(deltas, start, stop)
                _blend(stacks, rows_field[:, :4], torch.sigmoid(rows_field[:, 4:5]), taps[:, start:stop],
                       out=frame[:, :, start:stop])
            return frame
        field = _accumulate(field, deltas)
        mask = torch.sigmoid(field[:, 4:5])
        return _blend(stacks, field[:, :4], mask, taps)


#: Frames of at least this many (padded) pixels take the banded field (:meth:`IFNet46.forward_sparse`): from 1080p
#: on, where the full-resolution field and its upsampled terms are 80-330 MB; below it the whole field is summed
#: once, which upsamples each residual once instead of once per block that reads it.
BANDED_FIELD_PIXELS = 1920 * 1080
#: A field band is this many warp bands (:data:`retime.interpolate._taps.BAND_TAPS`) of rows: a few MB of float32.
FIELD_BAND = 4


def _fill_input(stacks: tuple[torch.Tensor, torch.Tensor], at_taps: torch.Tensor, taps: torch.Tensor,
                x: torch.Tensor, s: int) -> None:
    """Write a block's warps, mask logit and flow read at ``taps`` into its input ``x`` ``(B, 12, h, w)`` (channels
    0-5 and 7-11; 6 is t). ``at_taps`` ``(B, 5, 2h, 2w)`` for s > 1 (the taps of the block's 2x2 mean) or
    ``(B, 5, h, w)`` for s = 1: flow in full-resolution pixels and mask logit."""
    _warp_into(stacks, at_taps[:, :4], taps, x[:, :6], 1 if s == 1 else 2)
    pooled = at_taps if s == 1 else _halve(at_taps)
    x[:, 7:8].copy_(pooled[:, 4:5])
    x[:, 8:12].copy_(pooled[:, :4] if s == 1 else pooled[:, :4] / s)


def _reverse_into(x: torch.Tensor, batch: int, t: torch.Tensor) -> None:
    """Fill the second half of a block input ``x`` ``(2B, 12, h, w)`` with the time-reversed problem of its first
    half (the ensemble): the warps swapped, 1 - t (``t`` ``(B, 1, 1, 1)`` float32), the mask logit negated, the two
    flows swapped."""
    x[batch:, 0:3].copy_(x[:batch, 3:6])
    x[batch:, 3:6].copy_(x[:batch, 0:3])
    x[batch:, 6:7].copy_(1 - t)
    x[batch:, 7:8].copy_(x[:batch, 7:8].neg())
    x[batch:, 8:10].copy_(x[:batch, 10:12])
    x[batch:, 10:12].copy_(x[:batch, 8:10])


def _field_rows(deltas: list[tuple[int, torch.Tensor]], start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the full-resolution field that :func:`_accumulate` would sum from ``deltas``
    (scale, scaled ``(B, 5, H/s, W/s)`` residual): ``(B, 5, stop - start, W)`` float32, the same values."""
    field = None
    for s, delta in deltas:
        term = _upsample_rows(delta, s, start, stop) if s > 1 else delta[:, :, start:stop]
        if field is None:
            field = term.clone() if s == 1 else term
        else:
            field.add_(term)
    return field


def _scaled(delta: torch.Tensor, s: int) -> torch.Tensor:
    """A block's ``(B, 5, h, w)`` residual with the flow in full-resolution pixels (× s); the mask logit as is."""
    if s == 1:
        return delta
    return torch.cat((delta[:, :4] * s, delta[:, 4:5]), 1)


def _accumulate(field: torch.Tensor | None, deltas: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """Add the residuals ``deltas`` (scale, ``(B, 5, H/s, W/s)`` with the flow in full-resolution pixels,
    :func:`_scaled`), upsampled to full resolution, to ``field`` (in place; a new float32 tensor when ``None``) and
    empty ``deltas``."""
    for s, delta in deltas:
        term = _upsample(delta, s)
        if field is None:
            field = term.clone() if term is delta else term
        else:
            field.add_(term)
    deltas.clear()
    return field
