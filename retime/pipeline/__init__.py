"""The three things retime does — :func:`analyse`, :func:`fix_drops`, :func:`upsample` — from file to file.

Two passes, memory independent of the video's length:

1. **Analysis**: decode grey frames (:func:`retime.media.decode.iter_luma`), score each consecutive pair
   (:func:`retime.detect.frame_difference`), keep only the scores and the timestamps, then detect and plan.
2. **Rendering**: decode full frames again and stream them through the plan, holding a window of at most
   ``plan.max_lookahead`` source frames. A decode thread feeds a bounded queue, the main thread interpolates, an
   encode thread writes; the queues are small, so memory stays bounded.

Copied frames are re-encoded from the very pixels the decoder produced (native pixel format, no RGB round trip),
so with a lossless codec they are bit-exact. Synthesized frames come from an interpolator — any object with
``interpolate(frame0, frame1, ts) -> list[np.ndarray]`` on (H, W, 3) uint8 RGB arrays; the real
:class:`retime.interpolate.Interpolator` is built (and torch imported) only when a plan synthesizes something and
none was injected.

Output goes to an unnamed (or, where the file system has none, a hidden temporary) file in the target's folder and
gets its name, together with the ``--report``, only when complete (:func:`retime.media.encode.atomic_output`).

The package's modules, one job each: :mod:`._analysis` (pass 1), :mod:`._render` and :mod:`._threads` (pass 2),
:mod:`._timing` (the output timeline's maths), :mod:`._model` (the model's settings, the default engine and its
tuning), :mod:`._commands` (the two commands' shared setup and tail).
"""

from retime.pipeline._analysis import Analysis, analyse
from retime.pipeline._commands import RunResult, fix_drops, upsample
from retime.pipeline._model import ModelSettings
from retime.pipeline._protocols import FrameInterpolator, Progress
from retime.pipeline._timing import parse_rate, snap_times, upsample_rate

__all__ = [
    "Analysis",
    "FrameInterpolator",
    "ModelSettings",
    "Progress",
    "RunResult",
    "analyse",
    "fix_drops",
    "parse_rate",
    "snap_times",
    "upsample",
    "upsample_rate",
]
