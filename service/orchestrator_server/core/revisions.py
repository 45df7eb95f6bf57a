"""Optimistic concurrency for agents and teams: etags, and the read-merge-write loop of
an update.

An update merges the caller's masked fields onto the stored resource and writes it only
if the stored revision is still the one merged onto, so a concurrent writer is never
silently overwritten. With the caller's etag, a mismatch is the caller's to resolve
(ETAG_MISMATCH at once); without one, the merge is retried on the newer revision a few
times before giving up.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import AbortedError, InvalidArgumentError, Reason
from .store_port import Revisioned

R = TypeVar("R", bound=Revisioned)
UNCONDITIONAL_UPDATE_ATTEMPTS = 5
_ETAG = re.compile(r'^W/"(\d+)"$')


def parse_etag(etag: str, field: str = "etag") -> int | None:
    """The revision inside an etag; None when no etag was given."""
    if not etag:
        return None
    match = _ETAG.fullmatch(etag)
    if match is None:
        raise InvalidArgumentError.for_field(field, "is not an etag issued by this service")
    return int(match.group(1))


async def update_with_retry(
    kind: str,
    resource_id: str,
    expected: int | None,
    read: Callable[[], Awaitable[R]],
    write: Callable[[R, int], Awaitable[R]],
) -> R:
    """`write(current, revision)` the merge onto what `read()` returns, conditional on
    `expected` (the caller's etag) or else on the revision read, retrying the latter."""
    for _attempt in range(UNCONDITIONAL_UPDATE_ATTEMPTS):
        current = await read()
        try:
            return await write(current, current.revision if expected is None else expected)
        except AbortedError:
            if expected is not None:
                raise
    raise AbortedError(
        f"{kind} '{resource_id}' is being updated concurrently; retry",
        reason=Reason.ETAG_MISMATCH,
        metadata={f"{kind}_id": resource_id},
    )
