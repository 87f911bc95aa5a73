"""``retime train``: a Typer app mounted into retime's CLI from the ``retime.commands`` entry point.

Training is research tooling beside the product: the core package never imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from retime.cli import EPILOG, DebugOpt, WeightsOpt, exit_point

__all__ = ["app"]

app = typer.Typer()


@app.command("train", epilog=EPILOG)
@exit_point
def train_cmd(
    data: Annotated[list[Path], typer.Argument(metavar="DATA...", show_default=False,
                                               help="Image-triplet folders (frame_00/frame_01_gt/frame_02, "
                                                    "frame10/frame10i11/frame11, im1/im2/im3) and/or video files.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: cache, checkpoints (last.pt), refiner.pth.")
                   ] = Path("runs/refine"),
    steps: Annotated[Optional[int], typer.Option("--steps", help="Optimisation steps (default 500).",
                                                 show_default=False)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Crops per step (default 4).",
                                                 show_default=False)] = None,
    crop: Annotated[Optional[int], typer.Option("--crop", help="Side of the random square crops in pixels "
                                                "(default 96).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW peak learning rate, cosine decay "
                                                "(default 1e-3).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the initialisation and every "
                                                "augmentation (default 0).", show_default=False)] = None,
    patch: Annotated[Optional[int], typer.Option("--patch", help="Attention patch side k: 2 (4 pixels) or 3 "
                                                 "(9 pixels, default).", show_default=False)] = None,
    weights: WeightsOpt = None,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads for PyTorch (0: one per core).")] = 1,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from OUT/last.pt.")] = True,
    debug: DebugOpt = False,
) -> None:
    """Train the refinement stage (docs/refinement.md) with IFNet frozen; checkpoints every 50 steps, resumable."""
    from dataclasses import asdict, replace

    from retime_train.train import TrainConfig, train

    given = {"steps": steps, "batch": batch, "crop": crop, "lr": lr, "seed": seed, "patch": patch}
    config = replace(TrainConfig(), **{k: v for k, v in given.items() if v is not None})
    assert set(given) <= set(asdict(config))
    train(data, out, config, weights=weights, threads=threads or None, resume=resume)
