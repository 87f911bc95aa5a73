"""The refinement stage of the design documents (docs/refinement.md): flow-guided implicit warping by attention, then fusion.

Source: the interpolated-frame patent summarised in the design documents (docs/refinement.md, steps 3-6). After the first stage (IFNet)
has predicted Î_t, a *second* flow from Î_t's pixel grid into each input frame I_k is estimated
(:mod:`retime.refine.flow`). For every pixel p of Î_t the flow gives a target position q = p + F(p) in I_k; the k×k
block of I_k's pixels centred nearest to q is gathered (zeros outside the image), and p's value is re-estimated by
multi-head scaled dot-product attention, the query coming from p (value of Î_t(p) and its flow offset), keys and
values from the patch (pixel values and their sub-pixel offsets to q). The argument of the design documents:
bilinear warping is a fixed linear kernel; attention over a flow-guided patch *learns* the resampling kernel, so it
can stay sharp and pick the right side of a motion boundary. A small fusion network then merges Î_t and the two
updated frames; it predicts a residual on Î_t whose last layer starts at zero, so the untrained stage is the identity.

Everything is batched tensor arithmetic (``gather`` on flattened images, no per-pixel Python). The modules are pure:
no files, no device choice (the device and dtype come from the inputs).

Shapes: images are ``(B, 3, H, W)`` float in [0, 1]; flows ``(B, 2, H, W)`` in pixels, channel 0 = x (right),
channel 1 = y (down), the same convention as :func:`retime.interpolate.warp.backward_warp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FLOW_LOG_SCALE", "FusionNet", "ImplicitWarp", "PixelEncoder", "RefineOutput", "Refiner", "RefinerConfig",
           "TOKEN_BUDGET", "WarpOutput", "gather_patches", "patch_offsets"]

#: Flow magnitudes are fed to the query encoder compressed, sign(f)·log1p(|f|)/FLOW_LOG_SCALE, so that 1 px and
#: 100 px motions both land in a range a small MLP handles (log1p(100)/4 ≈ 1.15).
FLOW_LOG_SCALE = 4.0
#: Elements of one gathered token tensor (B·K·(D+3)·rows·W) processed at a time: 2**24 floats = 64 MB, so a 4K frame
#: is refined in bands of rows instead of holding ~5 GB of tokens at once. Training crops fit in one band.
TOKEN_BUDGET = 2**24


def patch_offsets(patch: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Integer offsets of a ``patch``×``patch`` block from its first (top-left) pixel: ``(patch², 2)`` long, (x, y),
    row-major (y outer)."""
    r = torch.arange(patch, device=device)
    gy, gx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=-1)


def gather_patches(image: torch.Tensor, flow: torch.Tensor, patch: int, *,
                   row_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather, for every pixel p, the ``patch``×``patch`` pixels of ``image`` around the target q = p + flow(p).

    The patch is the block of whole pixels whose centre is nearest to q: its first pixel is
    ``floor(q − (patch − 1)/2 + 1/2)``. For odd sizes (3x3) it is centred on the nearest pixel round(q); for even
    sizes (2x2) it is the four pixels surrounding q (which include the nearest one). Pixels outside the image are
    zeros (zero padding), and their offsets are still reported.

    Args:
        image: ``(B, C, H, W)`` float tensor (any C: RGB or feature maps).
        flow: ``(B, 2, h, W)`` same dtype/device, in pixels (x then y), defined on the *target* grid, which is
            ``image``'s grid or a band of h of its rows starting at ``row_offset`` (to bound memory on large frames).
        patch: k (≥ 1), the patch side; K = k² pixels are gathered.
        row_offset: the image row of the band's first row.

    Returns:
        ``(values, offsets)``: ``values`` ``(B, C, K, h, W)``, the patch pixels (row-major, y outer); ``offsets``
        ``(B, K, 2, h, W)``, each patch pixel's position minus the exact target q, in pixels (x, y), in
        ``[−(k+1)/2, (k+1)/2]``.

    Raises:
        ValueError: mismatched shapes or ``patch < 1``.
    """
    if patch < 1:
        raise ValueError(f"gather_patches: patch must be >= 1, got {patch}")
    if (image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != image.shape[0]
            or flow.shape[3] != image.shape[3] or not 0 <= row_offset <= image.shape[2] - flow.shape[2]):
        raise ValueError(f"gather_patches: image {tuple(image.shape)} and flow {tuple(flow.shape)} (rows from "
                         f"{row_offset}) do not match (expected flow (B, 2, H, W) with the image's B, H, W)")
    batch, channels, height, width = image.shape
    rows = flow.shape[2]
    # Positions in float32 even for half inputs: the pixel positions of a 4K frame do not fit float16's mantissa.
    ys = torch.arange(row_offset, row_offset + rows, device=flow.device, dtype=torch.float32).view(1, rows, 1)
    xs = torch.arange(width, device=flow.device, dtype=torch.float32).view(1, 1, width)
    qx = xs + flow[:, 0].float()  # (B, h, W) exact target position
    qy = ys + flow[:, 1].float()
    shift = (patch - 1) / 2.0
    x0 = torch.floor(qx - shift + 0.5).long()
    y0 = torch.floor(qy - shift + 0.5).long()
    grid = patch_offsets(patch, device=flow.device)  # (K, 2)
    px = x0.unsqueeze(1) + grid[:, 0].view(1, -1, 1, 1)  # (B, K, H, W)
    py = y0.unsqueeze(1) + grid[:, 1].view(1, -1, 1, 1)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    index = py.clamp(0, height - 1) * width + px.clamp(0, width - 1)  # (B, K, h, W)
    k = index.shape[1]
    flat = image.reshape(batch, channels, 1, height * width).expand(batch, channels, k, height * width)
    values = torch.gather(flat, 3, index.view(batch, 1, k, rows * width).expand(batch, channels, k, -1))
    values = values.view(batch, channels, k, rows, width) * inside.unsqueeze(1).to(image.dtype)
    offsets = torch.stack((px - qx.unsqueeze(1), py - qy.unsqueeze(1)), dim=2)
    return values, offsets.to(image.dtype)


def _conv_mlp(in_channels: int, dim: int) -> nn.Sequential:
    """Per-pixel MLP as 1x1 convolutions (channels-first, no permutes)."""
    return nn.Sequential(nn.Conv2d(in_channels, dim, 1), nn.GELU(), nn.Conv2d(dim, dim, 1))


def _channel_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Layer normalisation over the channel axis (1) of a channels-first tensor, with per-channel affine."""
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean) * torch.rsqrt(var + eps) * weight.view(shape) + bias.view(shape)


class PixelEncoder(nn.Module):
    """Value encoding of an image: two 3x3 convolutions, ``(B, 3, H, W)`` → ``(B, features, H, W)``.

    A little spatial context (5x5 receptive field) makes the keys and queries more discriminative than a bare RGB
    triple; shared by Î_t (queries) and the input frames (keys/values) so that matching compares like with like.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, features, 3, 1, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(features, features, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


@dataclass(frozen=True)
class WarpOutput:
    """What :class:`ImplicitWarp` returns.

    Attributes:
        frame: ``(B, 3, H, W)`` the updated frame (not clamped).
        attention: ``(B, heads, K, H, W)`` attention weights over the K patch pixels (sum to 1 over K).
    """

    frame: torch.Tensor
    attention: torch.Tensor


class ImplicitWarp(nn.Module):
    """Flow-guided multi-head attention over a k×k patch ("implicit warp"), one input frame at a time.

    Args:
        patch: patch side k (2 → 4 pixels, 3 → 9 pixels).
        dim: attention width (split over ``heads``).
        heads: number of attention heads; ``dim % heads == 0``.
        encoder: the :class:`PixelEncoder` (shared with the caller).
        features: output channels of ``encoder``.

    Per pixel p and patch pixel j (K = k² of them):

    - key/value token: x_j = LN(Wv·[rgb_j, enc_j] + Wpos·(dx, dy, dx², dy², dx·dy)_j), the offsets (dx, dy) of
      patch pixel j from the exact target q, in pixels;
    - query: y = LN(Wq·[rgb_p, enc_p] + MLP(frac(q), log-flow)) with Î_t's value and the flow offset;
    - standard multi-head attention, a_hj = softmax_j(⟨W_Q,h y, W_K,h x_j⟩ / √d_h), attended = ⊕_h W_V,h Σ_j a_hj x_j.

    The updated value is the head-averaged attention-weighted patch RGB (a learned, data-dependent resampling kernel)
    plus a linear map of the attended feature (a correction for what no patch pixel shows, e.g. a lighting change;
    zero at initialisation).

    Efficiency (it must run on a CPU): the projection Wv commutes with the gather, so it runs once per pixel before it;
    the key projection is folded into the query (⟨W_Q y, W_K x⟩ = ⟨W_Kᵀ W_Q y, x⟩; the key bias adds the same
    amount to every logit of a pixel and cancels in the softmax) and the value projection is applied after the
    weighted sum (the weights sum to 1). Both are exact rewrites of standard attention that leave only element-wise
    work per token, channels-first, without permutes.
    """

    def __init__(self, *, patch: int, dim: int, heads: int, encoder: PixelEncoder, features: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ImplicitWarp: dim {dim} is not a multiple of heads {heads}")
        self.patch, self.dim, self.heads = patch, dim, heads
        self.encoder = encoder
        self.key_value = nn.Conv2d(3 + features, dim, 1)
        # Offsets enter as the monomials (dx, dy, dx², dy², dx·dy): a linear map of them makes the attention logits
        # any quadratic in the offset, so softmax can express a Gaussian-like resampling kernel around the target,
        # at a fraction of the cost of a per-token MLP (there are K tokens per pixel).
        self.key_position = nn.Parameter(torch.randn(dim, 5) * 0.5)
        self.query_value = nn.Conv2d(3 + features, dim, 1)
        self.query_position = _conv_mlp(4, dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.norm_q = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim)
        self.to_pixel = nn.Conv2d(dim, 3, 1)
        # The feature path starts silent: the untrained update is a soft resampling of the patch.
        nn.init.zeros_(self.to_pixel.weight)
        nn.init.zeros_(self.to_pixel.bias)

    def forward(self, frame: torch.Tensor, frame_features: torch.Tensor, image: torch.Tensor,
                image_features: torch.Tensor, flow: torch.Tensor, *, keep_attention: bool = True) -> WarpOutput:
        """Update ``frame`` (Î_t) from ``image`` (I_k) along ``flow`` (Î_t's grid → I_k, pixels).

        Args:
            frame: ``(B, 3, H, W)`` Î_t in [0, 1].
            frame_features: ``(B, F, H, W)`` ``encoder(frame)``.
            image: ``(B, 3, H, W)`` I_k in [0, 1].
            image_features: ``(B, F, H, W)`` ``encoder(image)``.
            flow: ``(B, 2, H, W)`` in pixels.
            keep_attention: return the attention weights (``False``: an empty ``(B, heads, K, 0, W)`` tensor, which
                saves ``heads·K`` floats per pixel on large frames).

        Returns:
            :class:`WarpOutput`.
        """
        batch, _, height, width = frame.shape
        heads, dim, dh = self.heads, self.dim, self.dim // self.heads
        # Keys/values: project per pixel, then gather the patches (the projection commutes with the gather).
        source = torch.cat((image, self.key_value(torch.cat((image, image_features), 1))), 1)

        # Query: Î_t's value and its flow offset (sub-pixel part of the target, and the compressed motion).
        ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(height, 1)
        xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, width)
        target = torch.stack((xs + flow[:, 0], ys + flow[:, 1]), 1)
        frac = target - torch.round(target)  # in [-0.5, 0.5]
        logflow = torch.sign(flow) * torch.log1p(flow.abs()) / FLOW_LOG_SCALE
        query = self.query_value(torch.cat((frame, frame_features), 1)) + self.query_position(
            torch.cat((frac, logflow), 1))
        query = _channel_norm(query, self.norm_q.weight, self.norm_q.bias)  # (B, D, H, W)

        # q_h·k_hj = (W_K,hᵀ W_Q,h y + W_K,hᵀ b_Q,h) · x_j : one 1x1 convolution D → heads·D per pixel.
        wq = self.to_q.weight.view(heads, dh, dim)
        wk = self.to_k.weight.view(heads, dh, dim)
        fold_w = torch.einsum("hed,hef->hfd", wq, wk).reshape(heads * dim, dim, 1, 1)
        fold_b = torch.einsum("he,hef->hf", self.to_q.bias.view(heads, dh), wk).reshape(heads * dim)
        qk = F.conv2d(query, fold_w, fold_b).view(batch, heads, dim, 1, height, width)

        # The K tokens per pixel dominate memory: process bands of rows (one band at training crop sizes).
        k = self.patch * self.patch
        rows = max(1, TOKEN_BUDGET // (batch * k * (dim + 3) * width))
        frames, attentions = [], []
        for top in range(0, height, rows):
            band = slice(top, min(top + rows, height))
            values, offsets = gather_patches(source, flow[:, :, band], self.patch, row_offset=top)
            rgb, tokens = values[:, :3], values[:, 3:]  # (B, 3, K, h, W), (B, D, K, h, W)
            dx, dy = offsets[:, :, 0], offsets[:, :, 1]  # (B, K, h, W)
            monomials = torch.stack((dx, dy, dx * dx, dy * dy, dx * dy), 1)  # (B, 5, K, h, W)
            position = torch.einsum("dm,bmkyx->bdkyx", self.key_position.to(monomials.dtype), monomials)
            kv = _channel_norm(tokens + position, self.norm_kv.weight, self.norm_kv.bias)  # (B, D, K, h, W)
            logits = (qk[..., band, :] * kv.unsqueeze(1)).sum(2) / math.sqrt(dh)  # (B, heads, K, h, W)
            attention = logits.softmax(dim=2)
            mixed = (attention.unsqueeze(2) * kv.unsqueeze(1)).sum(3)  # (B, heads, D, h, W): Σ_j a_hj x_j
            attended = F.conv2d(mixed.reshape(batch, heads * dim, -1, width),
                                self.to_v.weight.view(dim, dim, 1, 1), self.to_v.bias, groups=heads)
            resampled = (attention.mean(1).unsqueeze(1) * rgb).sum(2)  # (B, 3, h, W)
            frames.append(resampled + self.to_pixel(attended))
            attentions.append(attention if keep_attention else attention[:, :, :, :0])
        return WarpOutput(frame=torch.cat(frames, 2), attention=torch.cat(attentions, 3))


class FusionNet(nn.Module):
    """Feature extraction → fusion → pixels: a two-level convolutional network over Î_t, the two updated frames,
    their differences to Î_t and the first stage's fusion mask M.

    ``(B, 17, H, W)`` → ``(B, 3, H, W)`` residual; the last convolution is zero-initialised so that the untrained
    stage returns Î_t exactly. H and W may be any size (the half-resolution branch is resized back).
    """

    IN_CHANNELS = 3 + 3 + 3 + 3 + 3 + 1 + 1

    def __init__(self, width: int) -> None:
        super().__init__()
        self.extract = nn.Sequential(nn.Conv2d(self.IN_CHANNELS, width, 3, 1, 1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.2))
        self.fuse = nn.Sequential(nn.Conv2d(3 * width, width, 3, 1, 1), nn.LeakyReLU(0.2))
        self.to_pixel = nn.Conv2d(width, 3, 3, 1, 1)
        nn.init.zeros_(self.to_pixel.weight)
        nn.init.zeros_(self.to_pixel.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.extract(x)
        b = F.interpolate(self.down(a), size=a.shape[2:], mode="bilinear", align_corners=False)
        return self.to_pixel(self.fuse(torch.cat((a, b), 1)))


@dataclass(frozen=True)
class RefineOutput:
    """What :class:`Refiner` returns.

    Attributes:
        frame: ``(B, 3, H, W)`` the refined frame (Î_t + residual; not clamped).
        updated0, updated1: ``(B, 3, H, W)`` the frames updated by attention from I_0 and I_1.
        attention0, attention1: ``(B, heads, K, H, W)`` attention weights.
    """

    frame: torch.Tensor
    updated0: torch.Tensor
    updated1: torch.Tensor
    attention0: torch.Tensor
    attention1: torch.Tensor


@dataclass(frozen=True)
class RefinerConfig:
    """Hyper-parameters of :class:`Refiner` (stored in checkpoints so that a file rebuilds its own network)."""

    patch: int = 3
    dim: int = 16
    heads: int = 2
    features: int = 8
    fusion_width: int = 16


class Refiner(nn.Module):
    """The learned second stage: :class:`ImplicitWarp` against I_0 and I_1 (shared weights), then :class:`FusionNet`.

    Args (keyword-only): the fields of :class:`RefinerConfig`.

    About 38 k parameters (35 k of them in the fusion network; ≈ 0.15 MB in float32) at the defaults.
    """

    def __init__(self, *, patch: int = 3, dim: int = 16, heads: int = 2, features: int = 8,
                 fusion_width: int = 16) -> None:
        super().__init__()
        self.config = RefinerConfig(patch=patch, dim=dim, heads=heads, features=features, fusion_width=fusion_width)
        self.encoder = PixelEncoder(features)
        self.warp = ImplicitWarp(patch=patch, dim=dim, heads=heads, encoder=self.encoder, features=features)
        self.fusion = FusionNet(fusion_width)

    @classmethod
    def from_config(cls, config: RefinerConfig) -> Refiner:
        return cls(patch=config.patch, dim=config.dim, heads=config.heads, features=config.features,
                   fusion_width=config.fusion_width)

    def forward(self, frame: torch.Tensor, img0: torch.Tensor, img1: torch.Tensor, flow0: torch.Tensor,
                flow1: torch.Tensor, mask: torch.Tensor, *, keep_attention: bool = True) -> RefineOutput:
        """Refine Î_t.

        Args:
            frame: ``(B, 3, H, W)`` Î_t from the first stage, float in [0, 1].
            img0, img1: ``(B, 3, H, W)`` the input frames I_0, I_1, same dtype/device.
            flow0, flow1: ``(B, 2, H, W)`` second flows from Î_t's grid into I_0 / I_1, in pixels.
            mask: ``(B, 1, H, W)`` the first stage's fusion mask M in (0, 1) (weight of I_0).
            keep_attention: return the attention weights (``False`` saves memory at inference).

        Returns:
            :class:`RefineOutput`.

        Raises:
            ValueError: if the shapes do not match.
        """
        for name, x, c in (("img0", img0, 3), ("img1", img1, 3), ("flow0", flow0, 2), ("flow1", flow1, 2),
                           ("mask", mask, 1)):
            if x.dim() != 4 or x.shape[0] != frame.shape[0] or x.shape[1] != c or x.shape[2:] != frame.shape[2:]:
                raise ValueError(f"Refiner: frame {tuple(frame.shape)} and {name} {tuple(x.shape)} do not match "
                                 f"(expected {name} (B, {c}, H, W) with the frame's B, H, W)")
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise ValueError(f"Refiner: frame {tuple(frame.shape)} must be (B, 3, H, W)")
        batch = frame.shape[0]
        # One encoder pass over Î_t, I_0 and I_1 together; the two warps run as one batch of 2B.
        feats = self.encoder(torch.cat((frame, img0, img1), 0))
        ff, f0, f1 = feats[:batch], feats[batch:2 * batch], feats[2 * batch:]
        out = self.warp(torch.cat((frame, frame), 0), torch.cat((ff, ff), 0), torch.cat((img0, img1), 0),
                        torch.cat((f0, f1), 0), torch.cat((flow0, flow1), 0), keep_attention=keep_attention)
        u0, u1 = out.frame[:batch], out.frame[batch:]
        x = torch.cat((frame, u0, u1, u0 - frame, u1 - frame, mask, (u0 - u1).abs().mean(1, keepdim=True)), 1)
        refined = frame + self.fusion(x)
        return RefineOutput(frame=refined, updated0=u0, updated1=u1, attention0=out.attention[:batch],
                            attention1=out.attention[batch:])
