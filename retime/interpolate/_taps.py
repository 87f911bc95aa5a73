"""Sampling at the taps, shared by the fast paths of both IFNets (:mod:`retime.interpolate._sparse`,
:class:`~retime.interpolate.ifnet46.IFNet46`).

A reference IFBlock downsamples its full-resolution input by s (bilinear, align_corners=False), which reads only two
rows and two columns per output pixel, the "taps"; the fast paths evaluate flows, masks and warps there alone. These
are the grids of the taps, the resampling helpers, and the band-by-band warps and blend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from retime.interpolate.warp import grid_step


def _new_input(batch: int, channels: int, height: int, width: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """An uninitialised block input ``(B, C, h, w)`` in ``dtype``, channels-last.

    The sparse path writes each part (warps, t, context, flow) straight into it, which fuses the concatenation, the
    dtype conversion and the layout change that oneDNN's convolutions want (docs/performance.md, change 7).
    """
    return torch.empty((batch, channels, height, width), dtype=dtype, device=device,
                       memory_format=torch.channels_last)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """The mean of each 2x2 block: ``(B, C, h, w)`` → ``(B, C, h/2, w/2)``.

    Bilinear downsampling by exactly 2 (align_corners=False) weights the two rows and two columns under each output
    pixel by 1/2 each, so it is this mean; PyTorch's bilinear kernel computes it faster than ``avg_pool2d``
    (docs/performance.md, change 10).
    """
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor, s: int) -> torch.Tensor:
    """Bilinear downsampling by ``s`` (1 or even; align_corners=False), as each reference IFBlock resizes its input.

    Output pixel q reads rows and columns s*q + s/2 - 1 and s*q + s/2, each weighted 1/2, so this averages four
    strided views of ``x``: it reads 4/s² of it, where PyTorch's bilinear kernel first copies the whole input (a
    ``contiguous()`` clone of the 7-channel stack; docs/performance.md, change 19).
    """
    if s == 1:
        return x
    a, b = s // 2 - 1, s // 2
    return (x[:, :, a::s, a::s] + x[:, :, a::s, b::s] + x[:, :, b::s, a::s] + x[:, :, b::s, b::s]) * 0.25


def _upsample(low: torch.Tensor, s: int) -> torch.Tensor:
    """Bilinear upsampling by ``s`` (align_corners=False), as the reference resizes every block output."""
    return F.interpolate(low, scale_factor=s, mode="bilinear", align_corners=False) if s > 1 else low



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



def _blend(stacks: tuple[torch.Tensor, torch.Tensor], flow: torch.Tensor, mask: torch.Tensor, taps: torch.Tensor,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Î_t = M ⊙ W(I_0, F_t→0) + (1 − M) ⊙ W(I_1, F_t→1) (RIFE eq. 1), band by band: ``(B, 3, H, W)``.

    ``flow`` ``(B, 4, h, W)`` final flows in pixels, ``mask`` ``(B, 1, h, W)`` fusion mask M in (0, 1), ``taps``
    ``(1, h, W, 2)`` the :func:`_tap_grid` rows they belong to (h = H, or a band of rows); written into ``out``
    ``(B, 3, h, W)`` when given.
    """
    batch, _, rows, width = flow.shape
    size = stacks[0].shape[2:]
    frame = torch.empty((batch, 3, rows, width), dtype=flow.dtype, device=flow.device) if out is None else out
    for start, stop in _bands(rows, width, 2):
        warped = [_rows_of(_sample(stack[:, :3], _grid(taps[:, start:stop], flow[:, 2 * k:2 * k + 2, start:stop],
                                                         size)), batch) for k, stack in enumerate(stacks)]
        for (offset, w0), (_, w1) in zip(*warped):
            first = start + offset
            last = first + w0.shape[2]
            torch.lerp(w1, w0, mask[:, :, first:last], out=frame[:, :, first:last])
    return frame
