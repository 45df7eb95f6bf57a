"""The exit codes of the client commands, one per class of error."""

from __future__ import annotations

from .. import errors
from .._channel import DEFAULT_ADDRESS

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
EXIT_PRECONDITION = 6
EXIT_CANCELLED = 7
EXIT_INTERRUPTED = 130

# Checked in order: the first class an error is an instance of gives the exit code.
EXIT_CODES: tuple[tuple[type[errors.OrchestratorError], int], ...] = (
    (errors.RequestTooLarge, EXIT_USAGE),
    (errors.InvalidArgument, EXIT_USAGE),
    (errors.NotFound, EXIT_NOT_FOUND),
    (errors.Conflict, EXIT_CONFLICT),
    (errors.Unavailable, EXIT_UNAVAILABLE),
    (errors.DeadlineExceeded, EXIT_UNAVAILABLE),
    (errors.ResourceExhausted, EXIT_UNAVAILABLE),
    (errors.FailedPrecondition, EXIT_PRECONDITION),
    (errors.RunCancelledError, EXIT_CANCELLED),
)

EXIT_HELP = f"""\
exit codes:
  0    success
  1    other errors (internal server error, unexpected failures)
  2    usage error or invalid argument (INVALID_ARGUMENT, INVALID_AGENT_ID, ...)
  3    not found (AGENT_NOT_FOUND, RUN_NOT_FOUND, SESSION_NOT_FOUND, TEAM_NOT_FOUND)
  4    conflict (AGENT_ALREADY_EXISTS, TEAM_ALREADY_EXISTS, ETAG_MISMATCH, SESSION_BUSY)
  5    unavailable or too slow: server unreachable, DEADLINE_EXCEEDED, MODEL_UNAVAILABLE,
       MODEL_RATE_LIMITED (retrying later may succeed)
  6    failed precondition (NO_DEFAULT_AGENT, AGENT_IN_USE, PROVIDER_NOT_CONFIGURED, ...)
  7    the run was cancelled (RUN_CANCELLED)
  130  interrupted (Ctrl-C)

environment: ORCHESTRATOR_ADDRESS (default {DEFAULT_ADDRESS}), ORCHESTRATOR_TENANT"""


def exit_code_for(error: errors.OrchestratorError) -> int:
    """The process exit code of an error class."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR
