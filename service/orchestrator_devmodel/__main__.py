"""`python -m orchestrator_devmodel [flags]`: run the dev model server.

Prints `DEVMODEL_LISTENING http://HOST:PORT/v1` on stdout once listening; stops cleanly
on SIGTERM/SIGINT (exit code 0). See `config.build_parser` for the flags.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import uvloop

from .config import config_from_args
from .rules import parse_rules
from .server import serve_until_signalled


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until signalled; 2 on a bad rules file."""
    config = config_from_args(argv)
    try:
        # Checked here so a bad file is a one-line error, not a traceback at start-up.
        parse_rules(config.initial_rules())
    except (OSError, ValueError) as exc:
        print(f"devmodel: error: rules: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # uvloop: the server shares the machine with what it is benchmarking.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_until_signalled(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
