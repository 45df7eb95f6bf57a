"""The core's Reason enumeration is exactly the contract's ErrorReason, both ways, and
every reason is raised with a status class."""

from __future__ import annotations

from orchestrator.v1 import error_reason_pb2
from orchestrator_server.core import errors


def contract_reasons() -> set[str]:
    names = set(error_reason_pb2.ErrorReason.keys())
    names.discard("ERROR_REASON_UNSPECIFIED")
    return names


def test_reason_equals_the_contracts_error_reason() -> None:
    ours = {reason.value for reason in errors.Reason}
    assert ours == contract_reasons()
    assert all(reason.name == reason.value for reason in errors.Reason)


def test_every_reason_rebuilds_an_error_of_its_class() -> None:
    for reason in errors.Reason:
        rebuilt = errors.error_for_reason(reason.value, "stored message")
        assert rebuilt.reason is reason and rebuilt.message == "stored message"
    assert errors.error_for_reason("NOT_A_REASON", "m").reason is errors.Reason.INTERNAL_ERROR
    cancelled = errors.error_for_reason("RUN_CANCELLED", "m")
    assert isinstance(cancelled, errors.RunCancelledError)
