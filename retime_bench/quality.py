"""Interpolation quality: rebuild frames that are known, and score them against the truth (PSNR, SSIM; RGB, 8-bit).

Two kinds of input:

- a **video**: the odd frames are dropped and rebuilt at t = 0.5 from their even neighbours. The real product path is
  measured as the protocol says: the even frames become a lossless FFV1 video at half the frame rate, ``retime
  upsample --factor 2`` (:func:`retime.pipeline.upsample`) runs on it with lossless FFV1 output, and each output
  frame that lies halfway between two kept frames is compared with the true odd frame. The model alone
  (:class:`~retime.interpolate.Interpolator` on the decoded RGB frames) and the peers are scored on the same frames;
- **image triplets** (Middlebury ``frame10/frame10i11/frame11``, UCF101 ``frame_00/frame_01_gt/frame_02``, ...): the
  first and last frames in, the middle one is the truth. A folder of triplet folders gives the mean over triplets.

Peers on the same inputs in the same run: the plain average of the two frames, the reference Practical-RIFE with the
same weights (:class:`~retime_bench.peers.ReferenceRife`), and FFmpeg's minterpolate when ``ffmpeg`` is on PATH.
How closely retime's model output agrees with the reference's is reported too (the target is >= 50 dB).

The product path writes a synthesized frame in the output's pixel format (4:2:0, 8 bits for the usual clip), which
costs PSNR by itself (docs/quality.md has how much) before anything the plan decides.
``upsample_vs_model`` therefore also scores the model's frames *as the encoder writes them* and lists the frames
where the product differs from those: a copy across a scene cut, or a bug.
"""

from __future__ import annotations

import logging

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from retime_bench import ffmpeg
from retime_bench.clipio import find_triplet_dirs, iter_video_frames, load_triplet, write_video
from retime_bench.metrics import Agreement, Scores, average_frame, json_number, psnr
from retime_bench.peers import ReferenceRife, to_reference_bytes
from retime.errors import InputError
from retime.media import EncodeSettings, iter_frames, probe, rgb_to_frame, to_rgb
from retime.media.encode import choose_encoder, choose_pix_fmt

log = logging.getLogger(__name__)

__all__ = ["METHODS", "quality_triplets", "quality_video", "is_triplet_source"]

#: Column keys and what each one is, in table order.
METHODS = {
    "retime_upsample": "retime upsample --factor 2 (FFV1 lossless, default preset)",
    "retime": "retime model with the product path's setting (video) or the default preset's (triplets), t=0.5",
    "retime_fast": "retime --quality fast (RIFE 4.6, no ensembling, scale by size)",
    "retime_42": "retime model RIFE 4.2x (the reference's weights)",
    "reference": "reference Practical-RIFE 4.2x (same weights)",
    "minterpolate": "ffmpeg minterpolate (mci, aobmc, bidir, vsbmc)",
    "average": "average of the two frames",
}




def is_triplet_source(path: Path) -> bool:
    """``True`` when ``path`` is a folder (of image triplets), ``False`` for a file (a video)."""
    return Path(path).is_dir()


class _Columns:
    """Per-method scores, plus the reason a method did not run (its column shows the reason, not a number)."""

    def __init__(self, methods: list[str]) -> None:
        self.scores: dict[str, Scores] = {m: Scores() for m in methods}
        self.unavailable: dict[str, str] = {}
        self.agreement = Agreement()

    def fail(self, method: str, reason: str) -> None:
        self.unavailable[method] = reason
        self.scores.pop(method, None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for method in METHODS:
            if method in self.unavailable:
                out[method] = {"available": False, "reason": self.unavailable[method]}
            elif method in self.scores:
                out[method] = {"available": True, **self.scores[method].to_dict()}
        return out


#: ``label -> (first, last) -> middle frame``: the model columns besides ``retime`` (see :func:`model_columns`).
Extra = dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]


def model_columns(device: str = "cpu") -> tuple[Any, Any, Extra]:
    """The engines the quality task compares: ``(RIFE 4.6, RIFE 4.2x, extra columns)``, where the extra columns are
    ``retime_fast`` (4.6 alone) and ``retime_42`` (4.2x alone: its agreement with the reference is reported)."""
    from retime.interpolate import Interpolator

    e46 = Interpolator(device=device, model="rife-4.6")
    e42 = Interpolator(device=device, model="rife-4.2x")
    return e46, e42, {"retime_fast": lambda a, b: e46.interpolate(a, b, [0.5], ensemble=False)[0],
                      "retime_42": lambda a, b: e42.interpolate(a, b, [0.5], ensemble=False)[0]}


def _score_pair(cols: _Columns, first: np.ndarray, truth: np.ndarray, last: np.ndarray, interpolator,
                reference: ReferenceRife | None, extra: Extra | None = None,
                settings: dict[str, Any] | None = None) -> np.ndarray | None:
    """Score every in-process method on one triplet (the minterpolate and pipeline columns are filled elsewhere).

    ``settings`` (``scale``, ``ensemble``, ``flips``) go to ``interpolator`` for the ``retime`` column. Returns retime's model
    frame (``None`` when the model did not run)."""
    ours = None
    if interpolator is not None and "retime" in cols.scores:
        (ours,) = interpolator.interpolate(first, last, [0.5], **(settings or {}))
        cols.scores["retime"].add(ours, truth)
    computed = {}
    for label, run in (extra or {}).items():
        computed[label] = run(first, last)
        cols.scores[label].add(computed[label], truth)
    if reference is not None and "reference" in cols.scores:
        (exact,) = reference.interpolate_float(first, last, [0.5])
        cols.scores["reference"].add(to_reference_bytes(exact), truth)
        same_weights = computed.get("retime_42", ours if extra is None else None)
        if same_weights is not None:
            cols.agreement.add(same_weights, exact, truth)
    cols.scores["average"].add(average_frame(first, last), truth)
    return ours


def _as_written(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """RGB -> the RGB that ``upsample --codec ffv1`` stores for a synthesized frame of the video at ``path``
    and the decoder gives back: the same pixel format, matrix and range as ``VideoWriter.from_rgb``."""
    info = probe(path)
    pix_fmt = choose_pix_fmt(choose_encoder("ffv1", info.codec), info.pix_fmt)

    def convert(rgb: np.ndarray) -> np.ndarray:
        return to_rgb(rgb_to_frame(rgb, pix_fmt, info.colorspace, info.color_range))

    return convert


def _machine_columns(reference: ReferenceRife | None, reference_reason: str | None, interpolator,
                     extra: Extra | None = None) -> _Columns:
    cols = _Columns(["retime_upsample", "retime", *(extra or {}), "reference", "minterpolate", "average"])
    if interpolator is None:
        cols.fail("retime", "not run")
    if reference is None:
        cols.fail("reference", reference_reason or "not available")
    reason = ffmpeg.unavailable_reason()
    if reason:
        cols.fail("minterpolate", reason)
    return cols


def quality_triplets(folder: Path, *, interpolator, reference: ReferenceRife | None,
                     reference_reason: str | None = None, max_triplets: int | None = None,
                     extra: Extra | None = None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every method on the image triplet(s) at ``folder`` (one triplet folder or a folder of them).

    Args:
        interpolator: retime's :class:`~retime.interpolate.Interpolator` (the ``retime`` column, run with
            ``settings``: the default preset's without a search, since a lone triplet has no other frames).
        reference: the reference implementation, or ``None`` (then ``reference_reason`` fills its column).
        max_triplets: score only the first N triplet folders (natural sort order).
        extra: more model columns (:func:`model_columns`).

    Returns:
        The ``quality`` section of the bench JSON: ``{"source", "kind": "triplets", "items", "size",
        "methods": {method: {"available", "frames", "psnr", "ssim", "psnr_min", "identical"} | {"available":
        false, "reason"}}, "retime_vs_reference": {...}, "seconds"}``. PSNR in dB, means over triplets.
    """
    started = time.perf_counter()
    dirs = find_triplet_dirs(folder)
    if max_triplets is not None:
        dirs = dirs[:max_triplets]
    cols = _machine_columns(reference, reference_reason, interpolator, extra)
    cols.fail("retime_upsample", "not applicable (image triplets: the model is measured on the frames directly)")
    sizes = set()
    for k, d in enumerate(dirs):
        tri = load_triplet(d)
        sizes.add(f"{tri.first.shape[1]}x{tri.first.shape[0]}")
        _score_pair(cols, tri.first, tri.truth, tri.last, interpolator, reference, extra, settings)
        if "minterpolate" in cols.scores:
            try:
                cols.scores["minterpolate"].add(ffmpeg.minterpolate_middle(tri.first, tri.last), tri.truth)
            except (RuntimeError, OSError) as exc:
                cols.fail("minterpolate", f"failed ({exc})")
        log.info(f"quality {Path(folder).name}: {k + 1}/{len(dirs)} triplets")
    return {"source": str(folder), "kind": "triplets", "items": len(dirs), "size": sorted(sizes),
            "methods": cols.to_dict(), "retime_vs_reference": cols.agreement.to_dict(), "retime_settings": settings,
            "seconds": round(time.perf_counter() - started, 3)}


def _video_triplets(path: Path, n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(odd index, previous even frame, odd frame, next even frame)`` for the first ``n`` frames, RGB."""
    window: list[np.ndarray] = []
    for i, (_, rgb) in enumerate(iter_video_frames(path, n)):
        window.append(rgb)
        if i % 2 == 0 and len(window) == 3:
            yield i - 1, window[0], window[1], window[2]
            window = [window[2]]


def quality_video(path: Path, *, interpolator, reference: ReferenceRife | None, reference_reason: str | None = None,
                  max_frames: int | None = None, pipeline: bool = True, workdir: Path | None = None,
                  extra: Extra | None = None, engines: dict[str, Any] | None = None) -> dict[str, Any]:
    """Drop every other frame of the first ``max_frames`` frames of a video, rebuild them, score every method.

    Args:
        path: the clip.
        interpolator: retime's :class:`~retime.interpolate.Interpolator`, injected into the pipeline run; or
            ``None`` with ``engines`` (model name -> engine): the pipeline then runs as shipped (default preset,
            its own setting search) and the ``retime`` column uses the engine and setting it chose.
        extra: more model columns (:func:`model_columns`).
        reference: the reference implementation, or ``None`` (then ``reference_reason`` fills its column).
        max_frames: frames of the clip to use (``None``: all). An even count loses its last frame (it has no
            right neighbour to be rebuilt from).
        pipeline: also run the real ``upsample --factor 2`` path (on by default).
        workdir: where the temporary half-rate and output videos go (default: a temporary folder).

    Returns:
        The ``quality`` section of the bench JSON (see :func:`quality_triplets`), with ``"kind": "video"``,
        ``"frames_used"`` and ``"rebuilt"`` (the number of odd frames scored).
    """
    started = time.perf_counter()
    info = probe(path)
    rate = info.frame_rate
    if max_frames is not None and max_frames < 3:
        raise InputError(f"the quality task needs at least 3 frames, got --max-frames {max_frames}")
    cols = _machine_columns(reference, reference_reason, interpolator or engines, extra)
    if not pipeline:
        cols.fail("retime_upsample", "not run (--no-pipeline)")
    chosen = None
    with tempfile.TemporaryDirectory(prefix="retime-bench-", dir=workdir) as tmp:
        half = Path(tmp) / "even.mkv"
        kept = write_video((f for i, (f, _) in enumerate(iter_video_frames(path, max_frames)) if i % 2 == 0),
                           half, rate=rate / 2, codec="ffv1")
        if kept < 2:
            raise InputError(f"{path}: the quality task needs at least 3 frames")
        n = 2 * kept - 1  # frames used: an even count loses its last frame, which has no right neighbour
        log.info(f"quality {path.name}: {kept} even frames kept as lossless FFV1 at {rate / 2} fps")
        product = None
        if pipeline:
            chosen, product = _score_pipeline(cols, path, half, tmp, n, rate, interpolator)
        engine, settings = interpolator, None
        if interpolator is None and engines:  # the model column uses what the product path chose, or the default
            pick = chosen or {"model": "rife-4.6", "scale": None, "ensemble": True}
            engine, settings = engines[pick["model"]], {"scale": pick["scale"], "ensemble": pick["ensemble"],
                                                        "flips": pick.get("flips", 0)}
        rebuilt = 0
        written = _as_written(half) if product is not None and engine is not None else None
        model_written: dict[int, np.ndarray] = {}  # at most n/2 frames: bounded by --max-frames
        for odd, first, truth, last in _video_triplets(path, n):
            ours = _score_pair(cols, first, truth, last, engine, reference, extra, settings)
            if written is not None and ours is not None:
                model_written[odd] = written(ours)
            rebuilt += 1
            log.info(f"quality {path.name}: model and peers, frame {odd} ({rebuilt}/{kept - 1})")
        if "minterpolate" in cols.scores:
            _score_minterpolate(cols, path, half, rate, n, info.width, info.height)
        versus = _versus(path, n, product, model_written) if product is not None else None
    return {"source": str(path), "kind": "video", "size": [f"{info.width}x{info.height}"], "rate": str(rate),
            "frames_used": n, "rebuilt": rebuilt, "methods": cols.to_dict(), "retime_settings": chosen,
            "retime_vs_reference": cols.agreement.to_dict(), "upsample_vs_model": versus,
            "seconds": round(time.perf_counter() - started, 3)}


def _odd_truths(path: Path, n: int) -> Iterator[tuple[int, np.ndarray]]:
    for i, (_, rgb) in enumerate(iter_video_frames(path, n)):
        if i % 2 == 1:
            yield i, rgb


def _score_minterpolate(cols: _Columns, path: Path, half: Path, rate: Fraction, n: int, width: int,
                        height: int) -> None:
    """minterpolate on the half-rate file: output ``2j + 1`` is halfway between kept frames ``j`` and ``j + 1``."""
    try:
        outputs = ffmpeg.minterpolate_video(half, rate / 2, width, height)
        truths = _odd_truths(path, n)
        scores = Scores()
        (_, first), = iter_video_frames(path, 1)
        for k, out in enumerate(outputs):
            if k == 0 and psnr(out, first) < ffmpeg.ALIGNMENT_PSNR:
                raise RuntimeError(f"its first output frame is not the first input frame "
                                   f"(PSNR {psnr(out, first):.1f} dB): the frames are not where the bench expects")
            if k % 2 == 1:
                i, truth = next(truths, (None, None))
                if i is None:
                    break
                scores.add(out, truth)
        outputs.close()
        if scores.frames != (n - 1) // 2:
            raise RuntimeError(f"minterpolate gave {scores.frames} in-between frames, expected {(n - 1) // 2}")
        cols.scores["minterpolate"] = scores
    except (RuntimeError, OSError) as exc:
        cols.fail("minterpolate", f"failed ({exc})")


def _score_pipeline(cols: _Columns, path: Path, half: Path, tmp: str, n: int, rate: Fraction,
                    interpolator) -> tuple[dict[str, Any] | None, dict[int, np.ndarray] | None]:
    """Run ``upsample --factor 2`` (lossless output) on the half-rate file and score its in-between frames.

    Returns ``(the model setting the run chose (its report's model section; None with an injected
    interpolator), {odd frame: the product's RGB frame there} or None when a frame is missing)``.
    """
    from retime.pipeline import upsample

    out = Path(tmp) / "up.mkv"
    log.info(f"quality {path.name}: retime upsample --factor 2 --codec ffv1")
    result = upsample(half, out, factor=2, encode=EncodeSettings(codec="ffv1"), interpolator=interpolator,
                      overwrite=True)
    truths = dict(_odd_truths(path, n))  # at most n/2 frames: bounded by --max-frames
    scores = Scores()
    product: dict[int, np.ndarray] = {}
    t0 = None
    for decoded in iter_frames(out):
        t0 = decoded.time if t0 is None else t0
        index = round((decoded.time - t0) * rate)  # the output is at the source's rate, starting where it starts
        if index in truths:
            scores.add(decoded.rgb, truths.pop(index))
            product[index] = decoded.rgb
    if truths:
        cols.fail("retime_upsample", f"failed (no output frame at the time of source frame(s) {sorted(truths)[:5]})")
        return result.model, None
    cols.scores["retime_upsample"] = scores
    return result.model, product


def _versus(path: Path, n: int, product: dict[int, np.ndarray], model_written: dict[int, np.ndarray]
            ) -> dict[str, Any] | None:
    """``upsample_vs_model``: the model's frames scored as the encoder writes them (PSNR dB), the product's mean
    PSNR minus theirs (dB), and the odd frames where the product's pixels differ from them, each with both PSNRs
    (the plan copied there, or something is wrong). ``None`` without model frames for every product frame."""
    if not model_written or set(model_written) != set(product):
        return None
    ours, written = Scores(), Scores()
    differing = []
    for index, truth in _odd_truths(path, n):
        if index not in product:
            continue
        ours.add(product[index], truth)
        written.add(model_written[index], truth)
        if not np.array_equal(model_written[index], product[index]):
            differing.append({"frame": index, "upsample_psnr": json_number(ours.psnr[-1]),
                              "model_written_psnr": json_number(written.psnr[-1])})
    delta = ours.mean_psnr - written.mean_psnr
    return {"model_written": written.to_dict(),
            "upsample_minus_model_written_db": round(delta, 4) if math.isfinite(delta) else None,
            "frames_differing": differing}

