"""retime: repair dropped frames and raise the frame rate of videos with neural frame interpolation.

The public API, the same calls the ``retime`` command makes::

    import retime

    result = retime.fix_drops("in.mp4", "out.mp4")            # repeats replaced, timestamp gaps filled
    result = retime.upsample("in.mp4", "out.mp4", factor=2)    # or fps="60000/1001"
    analysis = retime.analyse("in.mp4")                        # what fix-drops would do, nothing written
    frames = retime.Interpolator().interpolate(img0, img1, [0.5])  # the model on (H, W, 3) uint8 RGB arrays

Names are imported on first use, so ``import retime`` (and ``retime --help``) does not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → the module that defines it
_API = {
    "fix_drops": "retime.pipeline",
    "upsample": "retime.pipeline",
    "analyse": "retime.pipeline",
    "Analysis": "retime.pipeline",
    "ModelSettings": "retime.pipeline",
    "RunResult": "retime.pipeline",
    "Interpolator": "retime.interpolate",
    "DetectionSettings": "retime.detect",
    "TimingSettings": "retime.timing",
    "EncodeSettings": "retime.media",
    "configure_process": "retime._process",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'retime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
