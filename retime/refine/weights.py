"""Loading the refinement stage's weights: a small ``{"refiner": config, "state_dict": ...}`` file, read safely.

The trained file is committed and shipped in the package (``retime/interpolate/refine-implicit-warp.pth``, beside
the manifest) with a manifest entry that has no ``member`` (nothing to fetch) and ``"default": false`` (the
registry default stays the IFNet).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from retime.errors import ModelError
from retime.interpolate.weights import load_into, resolve_weights, sha256_file
from retime.refine.model import Refiner, RefinerConfig

__all__ = ["REFINER_ENTRY", "REFINER_ENV", "load_refiner", "resolve_refiner"]

#: Manifest name of the refinement weights trained by this project.
REFINER_ENTRY = "retime-refine-implicit-warp"
#: Environment variable pointing at refinement weights to use instead of the committed ones.
REFINER_ENV = "RETIME_REFINER_WEIGHTS"


def resolve_refiner(path: str | os.PathLike | None = None) -> tuple[Path, str | None]:
    """``path``, else ``$RETIME_REFINER_WEIGHTS``, else the manifest entry :data:`REFINER_ENTRY`.

    Returns ``(path, expected_sha256)`` (``None`` for a user-supplied file). Raises :class:`ModelError` if missing.
    """
    return resolve_weights(path, env=REFINER_ENV, entry=REFINER_ENTRY,
                           hint="train one with `retime train` and pass its refiner.pth")


def load_refiner(path: str | os.PathLike | None = None) -> Refiner:
    """Build a :class:`Refiner` from its weights file (strict, ``weights_only=True``, on the CPU).

    Raises:
        ModelError: missing, wrong SHA-256 (registry file), unreadable, or a layout that does not fit.
    """
    chosen, digest = resolve_refiner(path)
    if digest is not None and sha256_file(chosen) != digest:
        raise ModelError(f"refinement weights at {chosen} have the wrong SHA-256 (corrupt or replaced)")
    try:
        state = torch.load(chosen, map_location="cpu", weights_only=True)
        config = RefinerConfig(**state["refiner"])
        tensors = state["state_dict"]
    except Exception as exc:  # truncated file, not a dict, unknown config keys
        raise ModelError(f"cannot read refinement weights {chosen} ({type(exc).__name__}: {exc})") from None
    model = Refiner.from_config(config)
    load_into(model, tensors, chosen)
    return model
