"""``retime chunks plan|run|join``: one long video as a job array (SLURM, Kubernetes Indexed Jobs, GNU parallel):
the plan written once, each chunk run by its own job, the join at the end (docs/scale-out.md)."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime._process import configure_process
from retime.cli import _commands
from retime.cli._app import EPILOG, DebugOpt, MaxTriesOpt, QuietOpt, ReportOpt, app
from retime.cli._exit import err, exit_point
from retime.errors import RetimeError

log = logging.getLogger(__name__)

chunks_app = typer.Typer(name="chunks", no_args_is_help=True, epilog=EPILOG, rich_markup_mode=None,
                         help="One video as a job array: plan once, run each chunk anywhere, join (docs/scale-out.md).")
plan_app = typer.Typer(name="plan", no_args_is_help=True, epilog=EPILOG, rich_markup_mode=None,
                       help="Analyse IN and write the chunk manifest: `retime chunks plan fix-drops|upsample IN OUT "
                            "--manifest M [the command's options]`. Prints the chunk count as JSON.")
chunks_app.add_typer(plan_app)
app.add_typer(chunks_app)

ManifestArg = Annotated[Path, typer.Argument(metavar="MANIFEST", show_default=False,
                                             help="The plan file `retime chunks plan` wrote.")]
ManifestOpt = Annotated[Path, typer.Option("--manifest", "-m", metavar="M.json", show_default=False,
                                           help="The plan file to write; the chunks go into M.chunks/ beside it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print what was done as JSON on stdout.")]

#: Options of fix-drops/upsample that mean nothing when only planning (the jobs run elsewhere; the report is the join's).
_NOT_FOR_PLANS = {"jobs", "glob", "recursive", "executor", "ray_address", "gpus_per_task", "max_tries", "report"}


def _planning(command, name: str):
    """``retime chunks plan NAME``: the ``NAME`` command's own options (one definition), plus ``--manifest``, minus
    the folder and executor options; it plans into the manifest instead of running."""
    from retime.chunks import CHUNK_SECONDS

    signature = inspect.signature(command, eval_str=True)
    params = [p.replace(default=CHUNK_SECONDS) if p.name == "chunk_seconds" else p
              for p in signature.parameters.values() if p.name not in _NOT_FOR_PLANS]
    params.insert(2, inspect.Parameter("manifest", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ManifestOpt))

    def plan(**kwargs) -> None:
        token = _commands.PLAN_TO.set(kwargs.pop("manifest"))
        try:
            command(**kwargs)
        finally:
            _commands.PLAN_TO.reset(token)

    plan.__signature__ = signature.replace(parameters=params)
    plan.__annotations__ = {p.name: p.annotation for p in params}
    plan.__doc__ = (f"Plan `retime {name}` on IN in chunks of about --chunk-seconds (default {CHUNK_SECONDS:g} s): "
                    f"pass 1, the plan and the model's settings, written to --manifest. Then `retime chunks run M "
                    f"--index I` for each chunk, and `retime chunks join M`.")
    plan.__name__ = f"plan_{name.replace('-', '_')}"
    return plan


plan_app.command("fix-drops", epilog=EPILOG)(_planning(_commands.fix_drops_cmd, "fix-drops"))
plan_app.command("upsample", epilog=EPILOG)(_planning(_commands.upsample_cmd, "upsample"))


@chunks_app.command("run", epilog=EPILOG)
@exit_point
def run_cmd(
    manifest: ManifestArg,
    index: Annotated[Optional[int], typer.Option(
        "--index", "-i", metavar="I", min=0, show_default=False, envvar=["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"],
        help="The chunk to run (0-based; also $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX). Default: every "
             "unfinished chunk, one after the other.")] = None,
    max_tries: MaxTriesOpt = 3,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Render chunk I of the manifest unless it is done (idempotent: a finished chunk is not redone).

    The chunk file appears complete or not at all, then its done marker: a killed run leaves nothing counted as
    done, and running it again redoes it. An unexpected failure is retried in this process up to --max-tries times.
    """
    from retime.chunks import ChunkPlan, render_chunk

    configure_process()
    sheet = ChunkPlan.load(manifest)
    indices = [sheet.check_index(index).index] if index is not None else sheet.unfinished()
    for i in indices:
        for attempt in range(1, max_tries + 1):
            try:
                outcome = render_chunk(manifest, i)
                break
            except (RetimeError, KeyboardInterrupt):
                raise
            except Exception as exc:  # an unexpected failure: a bug, or a transient one (memory, a flaky disk)
                if attempt == max_tries:
                    raise
                log.warning("chunk %d, try %d of %d failed: %s", i, attempt, max_tries, exc)
        outcome["tries"] = attempt
        if as_json:
            sys.stdout.write(json.dumps(outcome) + "\n")
        elif not quiet:
            what = "already done" if outcome["status"] == "skipped" else \
                f"done ({outcome['frames']} frames, {outcome['synthesized']} synthesized, {outcome['seconds']:.1f} s)"
            err.print(f"chunk {i} of {len(sheet.data['chunks'])}: {what}", markup=False)


@chunks_app.command("join", epilog=EPILOG)
@exit_point
def join_cmd(
    manifest: ManifestArg,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Join the finished chunks into OUT (with the input's audio and other streams), atomically; exit 6, writing
    nothing, when a chunk is not done."""
    from retime.chunks import join_chunks

    joined = join_chunks(manifest, report=report)
    if as_json:
        sys.stdout.write(json.dumps({k: joined[k] for k in ("output", "frames_out", "synthesized", "seconds",
                                                             "chunks")}) + "\n")
    elif not quiet:
        err.print(f"retime chunks join: {joined['output']}: {joined['frames_out']} frames ({joined['synthesized']} "
                  f"synthesized) from {joined['chunks']['count']} chunks", markup=False)


@chunks_app.command("status", epilog=EPILOG)
@exit_point
def status_cmd(manifest: ManifestArg, debug: DebugOpt = False) -> None:
    """Print, as JSON, how many chunks the manifest has and which are not done yet."""
    from retime.chunks import ChunkPlan

    sheet = ChunkPlan.load(manifest)
    missing = sheet.unfinished()
    sys.stdout.write(json.dumps({"manifest": str(sheet.path), "chunks": len(sheet.data["chunks"]),
                                 "done": len(sheet.data["chunks"]) - len(missing), "unfinished": missing}) + "\n")
