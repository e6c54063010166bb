"""``python -m edge_agent`` is the same as the ``edge-agent`` command."""

from .cli.main import main

main()
