"""The model's settings and the engine built from them: :class:`ModelSettings`, the default interpolator (built,
and torch imported, only when a frame must be synthesized), and the search that tunes it on the input after pass 1
(:func:`_tune`)."""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from retime.defaults import DEFAULTS
from retime.media.probe import VideoInfo
from retime.pipeline._analysis import Analysis, _expected_frames
from retime.pipeline._protocols import FrameInterpolator
from retime.pipeline._threads import wait_through_interrupts

__all__ = ["SAMPLE_BYTES", "WEIGHTS_ENV", "ModelSettings", "tuning_positions", "tuning_samples"]

#: The environment variable that names a user's checkpoint (as ``retime.interpolate.weights.WEIGHTS_ENV``; not
#: imported from there, which would load torch before anything is synthesized).
WEIGHTS_ENV = "RETIME_WEIGHTS"


@dataclass(frozen=True)
class ModelSettings:
    """How the default interpolator is built and set (``retime.interpolate.Interpolator``'s arguments besides the
    device).

    Attributes:
        weights: checkpoint; ``None`` uses ``$RETIME_WEIGHTS`` or the registry entry of ``model``.
        quality: the preset (:data:`~retime.defaults.QUALITY_PRESETS`): ``fast``, ``balanced`` or ``best``.
        model: registry name (``rife-4.6``, ``rife-4.2x``); ``None``: the preset's (searched when it names
            several; 4.2x with ``refine``).
        scale: RIFE's flow scale, one of :attr:`~retime.defaults.Defaults.scale_choices`; ``None`` (auto): chosen
            on the input by the preset's search (:mod:`retime.interpolate.autotune`), or by frame size for a
            preset without one.
        ensemble: ``True``/``False`` fixes it; ``None``: the preset's (searched when the preset tries both).
        flips: 0, 1 or 2 fixes the flip averaging (``Interpolator``'s ``flips``); ``None``: the preset's.
        refine: add the refinement stage (docs/refinement.md); off by default.
        precision: ``"auto"`` (bfloat16/float16 convolutions where the device has them) or ``"float32"`` (the
            reference implementation's frames); see ``Interpolator``.

    Raises:
        UsageError: unknown preset, or a scale or flips that is not offered (checked when made, before any work).
    """

    weights: Path | None = None
    scale: float | None = None
    refine: bool = False
    precision: str = "auto"
    quality: str = DEFAULTS.quality
    model: str | None = None
    ensemble: bool | None = None
    flips: int | None = None

    def __post_init__(self) -> None:
        DEFAULTS.check_scale(self.scale)  # before any work: the engine is built only after pass 1
        DEFAULTS.quality_preset(self.quality)
        DEFAULTS.check_flips(self.flips)

    @property
    def preset(self):
        return DEFAULTS.quality_preset(self.quality)

    @property
    def models(self) -> list[str]:
        """The models to try, the first being the one used without a search (a ``weights`` file is one model)."""
        if self.model or self.refine or self.weights is not None:
            return [self.model or ("rife-4.2x" if self.refine else self.preset.models[0])]
        return list(self.preset.models)

    def candidates(self, height: int, width: int) -> list:
        """The settings the search tries at this frame size (pixels): one when nothing is searched."""
        from retime.interpolate.autotune import Candidate

        base = 0.5 if height * width > 2560 * 1440 else 1.0
        scales = [self.scale] if self.scale is not None else \
            [base * step for step in self.preset.scale_steps if base * step in DEFAULTS.scale_choices]
        ensembles = [self.ensemble] if self.ensemble is not None else list(self.preset.ensembles)
        flips = [self.flips] if self.flips is not None else list(self.preset.flips)
        if self.refine:  # the refinement stage runs after one plain estimate: there is nothing to average
            ensembles = [False]
        return [Candidate(m, sc, en, fl) for m in self.models for sc in scales for en in ensembles for fl in flips]


def _build_engine(device: str, model: ModelSettings, name: str) -> FrameInterpolator:
    from retime.interpolate import Interpolator  # torch is imported only when a frame must be synthesized

    first = model.candidates(1, 1)[0]
    refiner = None
    if model.refine:
        from retime.refine import load_refinement  # ModelError (exit 5) if missing or corrupt

        refiner = load_refinement()
    return Interpolator(weights=model.weights, device=device, scale=model.scale, refiner=refiner,
                        precision=model.precision, model=name, ensemble=first.ensemble, flips=first.flips)


def _default_interpolator(device: str, model: ModelSettings | None = None) -> Callable[[], FrameInterpolator]:
    """A factory of the interpolator of ``model``'s first model (built when first needed)."""
    model = model or ModelSettings()
    return lambda: _build_engine(device, model, model.models[0])


#: The search's model calls may be at most this share of the frames the job synthesizes. `balanced` may cost twice
#: RIFE 4.2x per synthesized frame (issue 13) and renders at up to 1.88x (4.2x with ensembling), which leaves
#: 0.12x; its candidates cost 1.24x a call on average (docs/quality.md), so 0.12 / 1.24 of a call per frame.
SEARCH_SHARE = 0.1

#: Most memory the search's sample frames may take (bytes; three RGB frames per sample). One sample is kept even
#: when it is larger (300 MB at 8K).
SAMPLE_BYTES = 96 << 20


def tuning_positions(info: VideoInfo, model: ModelSettings | None) -> list[int]:
    """Source frames whose RGB pictures pass 1 keeps for the settings search: ``i - 1, i, i + 1`` around each of
    the preset's sample positions, spread evenly over the expected frame count; none without a search."""
    model = model or ModelSettings()
    if len(model.candidates(info.height, info.width)) < 2:
        return []
    total = _expected_frames(info) or 0
    if total < 3:  # the container does not say: sample the first seconds
        total = 120
    per_sample = 3 * info.width * info.height * 3
    count = max(1, min(model.preset.samples, SAMPLE_BYTES // max(per_sample, 1)))
    centres = sorted({min(max(1, round((k + 0.5) * total / count)), total - 2) for k in range(count)})
    return sorted({i + d for c in centres for i in (c,) for d in (-1, 0, 1)})


def tuning_samples(analysis: Analysis) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(i, frame i - 1, frame i, frame i + 1)`` for each kept centre i whose three frames are distinct pictures
    of one shot (no duplicate and no scene cut among them)."""
    det = analysis.detection
    duplicates, cuts = set(det.duplicates), set(det.cuts)
    pics = analysis.pictures
    out = []
    for i in sorted(pics):
        if i - 1 in pics and i + 1 in pics and not ({i, i + 1} & (duplicates | cuts)):
            out.append((i, pics[i - 1], pics[i], pics[i + 1]))
    return out


def _tune(engine: FrameInterpolator, analysis: Analysis, model: ModelSettings | None, device: str, *,
          prefer_finer: bool, budget: int | None = None) -> tuple[FrameInterpolator, dict[str, Any] | None]:
    """Choose the model and set its scale and ensembling on the input.

    ``budget``: the frames the job synthesizes. The search makes at most :data:`SEARCH_SHARE` of that many model
    calls: fewer samples, or none when fewer than :data:`~retime.interpolate.autotune.MIN_SAMPLES` would be left
    (a fix-drops run that repairs 25 frames does not rebuild 16 to choose how); the samples kept stay spread over
    the clip.

    Returns:
        ``(engine to render with, the report's model section)``; an injected interpolator (it has no settings)
        comes back as it is, with ``None``.
    """
    if not hasattr(engine, "model_name"):
        return engine, None
    from retime.interpolate.autotune import MIN_SAMPLES, choose

    model = model or ModelSettings()
    info = analysis.info
    candidates = model.candidates(info.height, info.width)
    if model.weights is not None or os.environ.get(WEIGHTS_ENV):  # a user's file: one network, whatever its layout
        candidates = list(dict.fromkeys(dataclasses.replace(c, model=engine.model_name) for c in candidates))
    samples, skipped = [], None  # skipped: why a search was not run, for the report
    if len(candidates) > 1:
        affordable = None if budget is None else int(budget * SEARCH_SHARE) // len(candidates)
        if affordable is not None and affordable < MIN_SAMPLES:
            skipped = f"{budget} frame(s) to synthesize pay for fewer than {MIN_SAMPLES} rebuilds per setting"
        else:
            samples = _spread(tuning_samples(analysis), affordable)
            if len(samples) < MIN_SAMPLES:
                samples, skipped = [], f"fewer than {MIN_SAMPLES} frames to rebuild"
    if len(candidates) > 1 and not samples:  # nothing to rebuild: the first model by the size rule
        base = engine.scale_for(info.height, info.width)
        own = [c for c in candidates if c.model == engine.model_name] or candidates[:1]
        candidates = [min(own, key=lambda c: (abs(c.scale - base), not c.ensemble))]
    engines = {engine.model_name: engine}

    def get(name: str) -> FrameInterpolator:
        if name not in engines:
            engines[name] = _build_engine(device, model, name)
        return engines[name]

    choice = choose(get, samples, candidates, prefer_finer=prefer_finer)
    chosen = get(choice.candidate.model)
    chosen.scale, chosen.ensemble, chosen.flips = choice.candidate.scale, choice.candidate.ensemble, \
        choice.candidate.flips
    engines.clear()
    analysis.pictures.clear()
    return chosen, {"name": chosen.model_name, "quality": model.quality, "precision": model.precision,
                    "searched": len(choice.trials) > 0, "not_searched": skipped, **choice.to_dict()}


def _spread(items: list, count: int | None) -> list:
    """``count`` of ``items`` spread evenly over them, first and last included (all of them if ``count`` is more,
    or ``None``)."""
    if count is None or count >= len(items):
        return items
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, count).round().astype(int).tolist()))]


def _check_device(device: str) -> None:
    """Raise UsageError for a device that does not exist here (imports torch)."""
    from retime.interpolate import choose_device

    choose_device(device)


def _memo(factory: Callable[[], FrameInterpolator]) -> Callable[[], FrameInterpolator]:
    made: list[FrameInterpolator] = []

    def get() -> FrameInterpolator:
        if not made:
            made.append(factory())
        return made[0]

    get.made = made  # type: ignore[attr-defined]
    return get


class _Warm:
    """The default engine, built in a background thread from the moment the run starts, so that importing torch
    and loading the weights (about 2 s on a 2-core CPU) overlap pass 1's decoding instead of following it.

    Calling it waits for the build and returns the engine, or raises what the build raised (a missing or corrupt
    checkpoint: ``ModelError``); :meth:`check` raises that error as soon as it is known, without waiting, so that
    pass 1 stops early instead of decoding a long video first. ``made`` is the list :func:`_device_name` reads.
    """

    def __init__(self, factory: Callable[[], FrameInterpolator]) -> None:
        self.made: list[FrameInterpolator] = []
        self._error: BaseException | None = None
        self._done = threading.Event()  # set when the build has ended, however
        self._thread = threading.Thread(target=self._build, args=(factory,), name="retime-engine-load", daemon=True)
        self._thread.start()

    def _build(self, factory: Callable[[], FrameInterpolator]) -> None:
        try:
            self.made.append(factory())
        except BaseException as exc:  # handed to the main thread, which raises it
            self._error = exc
        finally:
            self._done.set()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def __call__(self) -> FrameInterpolator:
        self._done.wait()  # an interrupt here reaches the run's settle(), which waits on
        self.check()
        return self.made[0]

    def settle(self) -> None:
        """Wait until the build has ended, however it ended (its error is :meth:`check`'s), through interrupts
        (raised again after). Every run calls this before it returns or raises: a process that exits while the
        build is inside torch aborts ("terminate called without an active exception", exit -6) instead of exiting
        with its own code."""
        wait_through_interrupts(self._done)


def _settle_engine(get_engine: Callable[[], FrameInterpolator], injected: bool, analysis: Analysis, plan,
                   model: ModelSettings | None, device: str, *, prefer_finer: bool
                   ) -> tuple[Callable[[], FrameInterpolator], dict[str, Any] | None]:
    """After pass 1: the engine pass 2 renders with and the report's ``model`` section.

    When the plan synthesizes something and the engine is not injected (an injected one is used as it is), the
    engine is built now, so that its weights are checked before the long pass, and tuned on the input
    (:func:`_tune`). The sample pictures are freed either way.
    """
    tuning = None
    if plan.synthesized and not injected:
        engine, tuning = _tune(get_engine(), analysis, model, device, prefer_finer=prefer_finer,
                               budget=plan.synthesized)
        get_engine = _memo(lambda: engine)
    analysis.pictures.clear()
    return get_engine, tuning


def _device_name(get: Callable[[], FrameInterpolator]) -> str | None:
    made = getattr(get, "made", [])
    return str(getattr(made[0], "device", "injected")) if made else None
