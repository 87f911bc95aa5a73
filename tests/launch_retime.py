"""Run retime's console entry point in a child process with the tests' stand-ins, for tests that need a real process
(signals, pipes, hangs, exit codes as a shell sees them):

    python tests/launch_retime.py [--blend] [--named-temp] -- retime-arguments...

``--blend``: synthesize with the blending stand-in instead of loading the model (tests/conftest.py);
``--named-temp``: write through the fallback temporary name, as on file systems without O_TMPFILE.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else 0
    flags, args = set(argv[:split]), argv[split + 1:] if "--" in argv else argv
    import retime.cli as cli

    if "--blend" in flags:
        import retime.pipeline as pipeline
        from conftest import BlendInterpolator

        pipeline._default_interpolator = lambda device, model=None: BlendInterpolator
    if "--named-temp" in flags:
        import retime.media.encode as encode

        encode._open_unnamed = lambda folder: None
    cli.main(args)
