"""Opaque, tamper-evident page tokens for keyset pagination.

A token carries the sort key of the last item served and a fingerprint of the listing's
filters, signed with a server secret: a forged, altered or foreign token (one issued for
another listing or tenant) is INVALID_PAGE_TOKEN instead of a silently wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .errors import InvalidArgumentError, Reason
from .types import Page
from .validation import check_page_size

T = TypeVar("T")

JsonKey = Sequence[str | int | float]
# Listings that carry large texts (runs, messages) end a page before its texts reach
# this many bytes: half the 4 MiB a gRPC client accepts by default, leaving room for the
# rest of each item.
DEFAULT_PAGE_BYTES = 2 * 1024 * 1024


def scope_of(*parts: object) -> str:
    """The canonical fingerprint of a listing's filters: a JSON array, so that no value
    can be read as another filter (joining `a=1,b=2` would equal the filter {a: "1,b=2"})."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


class PageTokens:
    """Issues and verifies page tokens with one secret."""

    def __init__(self, secret: bytes, page_bytes: int = DEFAULT_PAGE_BYTES) -> None:
        self._secret = secret
        self.page_bytes = page_bytes

    def _sign(self, body: bytes) -> str:
        digest = hmac.new(self._secret, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, scope: str, key: JsonKey) -> str:
        """A token that resumes the listing `scope` after the item with sort key `key`."""
        body = json.dumps({"s": scope, "k": list(key)}, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(body)}"

    def parse(self, scope: str, token: str) -> list[str | int | float] | None:
        """The sort key inside a token, None for the first page, or INVALID_PAGE_TOKEN."""
        if not token:
            return None
        try:
            payload, signature = token.split(".", 1)
            body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            valid = hmac.compare_digest(signature, self._sign(body))
            data = json.loads(body) if valid else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if (
            not isinstance(data, dict)
            or data.get("s") != scope
            or not isinstance(data.get("k"), list)
        ):
            raise InvalidArgumentError.for_field(
                "page_token",
                "was not issued for this listing or was altered",
                reason=Reason.INVALID_PAGE_TOKEN,
            )
        key: list[str | int | float] = data["k"]
        return key

    def page(
        self,
        scope: str,
        fetched: list[T],
        limit: int,
        key: Callable[[T], JsonKey],
        size: Callable[[T], int] | None = None,
    ) -> Page[T]:
        """The page for `fetched`, which was read with limit + 1 rows: the extra row only
        tells that there is a next page, whose token resumes after the last item served.
        With `size` (an item's bytes), the page also ends before it would exceed
        `self.page_bytes`, so that every response fits the transport (at least one item
        is always served)."""
        served = _within_budget(fetched[:limit], size, self.page_bytes)
        if len(served) == len(fetched):
            return Page(fetched)
        return Page(served, self.issue(scope, key(served[-1])))

    async def fetch_page(
        self,
        scope: str,
        page_size: int,
        page_token: str,
        fetch: Callable[[list[str | int | float] | None, int], Awaitable[list[T]]],
        key: Callable[[T], JsonKey],
        size: Callable[[T], int] | None = None,
    ) -> Page[T]:
        """One page of a listing: checks the size and the token, then calls
        `fetch(key after which to start or None, rows to read)` for one row more than
        the page holds."""
        limit = check_page_size(page_size)
        after = self.parse(scope, page_token)
        return self.page(scope, await fetch(after, limit + 1), limit, key, size)


def text_bytes(*texts: str) -> int:
    """The UTF-8 size of some texts (the cheap length when they are ASCII)."""
    return sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts)


def _within_budget(items: list[T], size: Callable[[T], int] | None, budget: int) -> list[T]:
    if size is None:
        return items
    total = 0
    for count, item in enumerate(items):
        total += size(item)
        if total > budget and count:
            return items[:count]
    return items
