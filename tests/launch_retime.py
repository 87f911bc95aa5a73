"""Run retime's console entry point in a child process with the tests' stand-ins, for tests that need a real process
(signals, pipes, hangs, exit codes as a shell sees them):

    python tests/launch_retime.py [--blend] [--named-temp] -- retime-arguments...
    python tests/launch_retime.py --blend --serve

``--blend``: synthesize with the blending stand-in instead of loading the model (tests/conftest.py);
``--named-temp``: write through the fallback temporary name, as on file systems without O_TMPFILE;
``--crash-after N``: the process dies (``os._exit(9)``, as under SIGKILL) once a chunk has N encoded packets;
``--serve``: a fork server for the fuzz suite. It imports everything once, then for each JSON line on stdin
(``{"args": [...], "cwd": DIR, "stdout": FILE, "stderr": FILE, "timeout": SECONDS}``) forks a child that runs the
entry point like the console script would (its exit code, or 1 with the traceback for an uncaught exception),
kills it with SIGKILL past the timeout, and answers one JSON line: ``{"rc": CODE, "hang": BOOL}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _child(case: dict) -> None:
    """In the forked child: run one command with stdout/stderr sent to files, then leave without clean-up."""
    code = 1
    try:
        os.chdir(case["cwd"])
        for fd, name in ((1, case["stdout"]), (2, case["stderr"])):
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        import retime.cli as cli

        try:
            cli.main(case["args"])
            code = 0
        except SystemExit as exc:  # what the interpreter does with sys.exit's argument
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _run(case: dict) -> dict:
    pid = os.fork()
    if pid == 0:
        _child(case)
    deadline = time.monotonic() + case.get("timeout", 60)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"rc": os.waitstatus_to_exitcode(status), "hang": False}
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"rc": None, "hang": True}
        time.sleep(0.005)


def _serve() -> None:
    import retime.cli  # noqa: F401  (imported once, before any fork)
    import retime.pipeline  # noqa: F401

    for line in sys.stdin:
        sys.stdout.write(json.dumps(_run(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    flags, args = argv[:split], argv[split + 1:]
    import retime.cli as cli

    if "--blend" in flags:
        import retime.pipeline as pipeline
        from conftest import BlendInterpolator

        pipeline._model._default_interpolator = lambda device, model=None: BlendInterpolator
    if "--named-temp" in flags:
        import retime.media._output as output

        output._open_unnamed = lambda folder: None
    if "--crash-after" in flags:
        import retime.chunks._packets as packets

        limit, write = int(flags[flags.index("--crash-after") + 1]), packets.PacketFile.write

        def crash(self, packet):
            if self.count >= limit:
                os._exit(9)
            write(self, packet)

        packets.PacketFile.write = crash
    if "--serve" in flags:
        _serve()
    else:
        cli.main(args)
