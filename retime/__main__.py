"""python -m retime: the same as the retime command."""

from retime.cli import main

main()
