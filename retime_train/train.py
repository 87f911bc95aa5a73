"""``retime train``: train the refinement stage (the design's implicit-warp refinement, docs/refinement.md) on image triplets or videos, IFNet frozen.

Loss: the Charbonnier penalty of the design documents, ρ(x) = √(x² + ε²) with ε = 1e-6, summed over pixels (and
colour channels) and averaged over the batch, on the refined frame, plus ``aux_weight`` times the mean of the same
penalty on the two attention-updated frames (deep supervision of the implicit warp). The relativistic-average adversarial term with a VGG-13-style
discriminator that the design documents add is *not* implemented (docs/refinement.md says why).

Run as ``retime train DATA... --out runs/refine`` (``--help`` lists the options). The first stage's
outputs are cached per triplet (:func:`retime_train.data.build_cache`), so a step costs only the small network.
Checkpoints (``last.pt``) hold the network, the optimiser, the step and the configuration; running the same command
again resumes from them. Every augmentation is drawn from a generator seeded by ``(seed, step)``, so a resumed run
draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from retime.errors import InputError, UsageError
from retime.metrics import psnr
from retime_train.data import augment, build_cache, load_cached, mine_triplets
from retime.refine.model import Refiner

__all__ = ["CHARBONNIER_EPS", "KEYS", "TrainConfig", "charbonnier", "export_weights", "load_checkpoint",
           "save_checkpoint", "train"]

#: ε of the Charbonnier penalty (the design's loss, docs/refinement.md).
CHARBONNIER_EPS = 1e-6


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Σ_pixels √((prediction − target)² + ε²), summed over C, H, W and averaged over the batch; a scalar.

    ``prediction`` and ``target``: ``(B, C, H, W)``, same shape.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"charbonnier: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    return torch.sqrt((prediction - target) ** 2 + eps * eps).sum(dim=(1, 2, 3)).mean()


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (recorded in each checkpoint and in ``config.json``)."""

    steps: int = 500
    batch: int = 4
    crop: int = 96
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: Second-flow mode (retime.refine.flow.FLOW_MODES).
    flow_mode: str = "reuse"
    cache_size: int = 256
    #: One triplet in ``holdout_every`` (by mined order) is kept out of training and used to monitor over-fitting.
    #: Weight of the auxiliary Charbonnier loss on the two attention-updated frames (mean of the two), which
    #: supervises the implicit warp directly instead of only through the fusion network (0 turns it off).
    aux_weight: float = 0.5
    holdout_every: int = 19
    checkpoint_every: int = 100
    patch: int = 3
    dim: int = 16
    heads: int = 2
    features: int = 8
    fusion_width: int = 16


def save_checkpoint(path: Path, model: Refiner, optimizer: torch.optim.Optimizer, step: int,
                    config: TrainConfig, history: list[dict]) -> None:
    """Atomically write ``{model, optimizer, step, config, refiner, history}`` to ``path``."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "config": asdict(config), "refiner": asdict(model.config), "history": history}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, model: Refiner, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a training checkpoint into ``model`` (and ``optimizer``); returns the whole checkpoint dict."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state


def export_weights(checkpoint: Path, destination: Path) -> None:
    """Write the inference file (``{"refiner": config, "state_dict": ...}``, float32) from a training checkpoint."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({"refiner": state["refiner"], "state_dict": state["model"]}, destination)


def _batch(samples: list[dict[str, torch.Tensor]], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in keys}


KEYS = ("img0", "truth", "img1", "frame", "mask", "flow0", "flow1")


def _psnr(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR (dB) of two ``(..., H, W)`` float tensors in [0, 1], each rounded to 8 bits first."""
    def to_u8(x: torch.Tensor) -> np.ndarray:
        return x.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()

    return psnr(to_u8(prediction), to_u8(truth))


@torch.no_grad()
def _validate(model: Refiner, samples: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
    """Mean PSNR (8-bit, rounded) of Î_t and of the refined frame over the held-out cached samples."""
    model.eval()
    base, refined = [], []
    for s in samples:
        b = _batch([s], KEYS)
        out = model(b["frame"], b["img0"], b["img1"], b["flow0"], b["flow1"], b["mask"]).frame
        base.append(_psnr(b["frame"], b["truth"]))
        refined.append(_psnr(out, b["truth"]))
    model.train()
    return float(np.mean(base)), float(np.mean(refined))


def train(data: list[str | Path], out: str | Path, config: TrainConfig = TrainConfig(), *,
          weights: str | Path | None = None, threads: int | None = 1, resume: bool = True,
          progress: bool = True) -> Path:
    """Train the refinement stage; returns the path of the exported weights (``out/refiner.pth``).

    Args:
        data: image-triplet folders and/or video files (:func:`retime_train.data.mine_triplets`).
        out: run folder: ``cache-*/`` (first-stage outputs), ``last.pt`` (checkpoint), ``refiner.pth``,
            ``log.jsonl``.
        config: :class:`TrainConfig`.
        weights: IFNet checkpoint (``None``: the registry's rife-4.2x, whose flows the refiner refines).
        threads: ``torch.set_num_threads`` (``None``: leave PyTorch's default).
        resume: continue from ``out/last.pt`` if present (its configuration must match ``config``, except
            ``steps``: a run can be lengthened or shortened).
        progress: show a Rich progress bar.

    Raises:
        ValueError: no triplets found, or ``out/last.pt`` was written with a different configuration.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from retime.interpolate.ifnet import IFNet
    from retime.interpolate.weights import load_into, load_state_dict, resolve_weights

    if threads is not None:
        torch.set_num_threads(threads)
    console = Console(stderr=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"data": [str(d) for d in data], **asdict(config)}, indent=2))
    torch.manual_seed(config.seed)

    triplets = mine_triplets(list(data))
    if not triplets:
        raise InputError(f"no training triplets found in {[str(d) for d in data]}")
    path, digest = resolve_weights(weights, entry="rife-4.2x")  # the refiner is trained on 4.2x's flows
    ifnet = IFNet()
    load_into(ifnet, load_state_dict(path, digest), path)
    ifnet.eval().requires_grad_(False)
    cache = out / f"cache-s{config.cache_size}-{config.flow_mode}"
    console.print(f"{len(triplets)} triplets; caching the first stage's outputs in {cache}")
    files = build_cache(triplets, ifnet, cache, size=config.cache_size, flow_mode=config.flow_mode,
                        seed=config.seed)
    del ifnet
    samples = [load_cached(f) for f in files]
    holdout = [s for i, s in enumerate(samples) if i % config.holdout_every == 0]
    train_set = [s for i, s in enumerate(samples) if i % config.holdout_every != 0]
    console.print(f"{len(train_set)} training triplets, {len(holdout)} held out for monitoring")

    model = Refiner(patch=config.patch, dim=config.dim, heads=config.heads, features=config.features,
                    fusion_width=config.fusion_width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = lambda step: 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))  # noqa: E731
    start, history = 0, []
    last = out / "last.pt"
    if resume and last.exists():
        state = load_checkpoint(last, model, optimizer)
        # Only the length of the run may change on resume (the cosine schedule follows the new length).
        if {**state["config"], "steps": config.steps} != asdict(config):
            raise UsageError(f"{last} was written with a different configuration; use another --out or --no-resume")
        if state["config"]["steps"] != config.steps:
            console.print(f"run length changed from {state['config']['steps']} to {config.steps} steps")
        start, history = state["step"], state["history"]
        console.print(f"resumed from {last} at step {start}")

    model.train()
    begin, running = time.time(), []
    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("train", total=config.steps, completed=start, info="")
        for step in range(start, config.steps):
            rng = np.random.default_rng([config.seed, step])
            picks = rng.integers(0, len(train_set), config.batch)
            batch = _batch([augment({k: train_set[i][k] for k in KEYS}, rng, config.crop) for i in picks], KEYS)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * schedule(step)
            result = model(batch["frame"], batch["img0"], batch["img1"], batch["flow0"], batch["flow1"],
                           batch["mask"])
            loss = charbonnier(result.frame, batch["truth"])
            total = loss
            if config.aux_weight:
                total = loss + config.aux_weight * 0.5 * (charbonnier(result.updated0, batch["truth"])
                                                         + charbonnier(result.updated1, batch["truth"]))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            base = float(charbonnier(batch["frame"], batch["truth"]))
            running.append((float(loss.detach()), base))
            done = step + 1
            if done % config.checkpoint_every == 0 or done == config.steps:
                loss_mean, base_mean = map(float, np.mean(running, axis=0))
                val_base, val_refined = _validate(model, holdout)
                entry = {"step": done, "loss": loss_mean, "loss_first_stage": base_mean, "holdout_psnr_first":
                         val_base, "holdout_psnr_refined": val_refined, "elapsed_s": round(time.time() - begin, 1),
                         "lr": config.lr * schedule(step)}
                history.append(entry)
                with (out / "log.jsonl").open("a") as log:
                    log.write(json.dumps(entry) + "\n")
                save_checkpoint(last, model, optimizer, done, config, history)
                running = []
                if not progress:
                    console.print(entry)
            bar.update(task, completed=done,
                       info=f"loss {float(loss.detach()):.0f} (Î_t {base:.0f})" + (
                           f" holdout {history[-1]['holdout_psnr_refined']:.2f} dB vs "
                           f"{history[-1]['holdout_psnr_first']:.2f}" if history else ""))
    export_weights(last, out / "refiner.pth")
    console.print(f"wrote {out / 'refiner.pth'}")
    return out / "refiner.pth"
