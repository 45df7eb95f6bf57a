"""Async client for the dev model server's `/_dev/` admin API (tests, benchmarks).

Uses `httpx2`, which the `openai` package already depends on, so no extra dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import httpx2

from .config import ADMIN_TOKEN_HEADER


class DevModelAdmin:
    """Script the dev model server and read what it saw.

    `base_url` may be the OpenAI base URL (`http://host:port/v1`) or the bare origin.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, admin_token: str | None = None
    ) -> None:
        origin = base_url.rstrip("/").removesuffix("/v1")
        headers = {ADMIN_TOKEN_HEADER: admin_token} if admin_token else {}
        # trust_env=False: a proxy from the environment must never see local test traffic.
        self._http = httpx2.AsyncClient(
            base_url=origin, timeout=timeout, trust_env=False, headers=headers
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, f"/_dev/{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    async def set_rules(self, rules: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the script; returns the rules as the server holds them."""
        result: list[dict[str, Any]] = (
            await self._call("PUT", "rules", json={"rules": list(rules)})
        )["rules"]
        return result

    async def add_rules(self, rules: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append rules (after the existing ones); returns the whole script."""
        result: list[dict[str, Any]] = (
            await self._call("POST", "rules", json={"rules": list(rules)})
        )["rules"]
        return result

    async def clear_rules(self) -> None:
        """Remove every rule (default replies only)."""
        await self._call("DELETE", "rules")

    async def rules(self) -> list[dict[str, Any]]:
        """The script with per-rule `hits` and `exhausted`."""
        result: list[dict[str, Any]] = (await self._call("GET", "rules"))["rules"]
        return result

    async def requests(self) -> list[dict[str, Any]]:
        """Received chat requests, oldest first: `{request_id, received_at, body}`."""
        result: list[dict[str, Any]] = (await self._call("GET", "requests"))["requests"]
        return result

    async def clear_requests(self) -> None:
        """Forget recorded requests."""
        await self._call("DELETE", "requests")

    async def events(
        self, *, outcome: str | None = None, wait: float = 0.0, min_count: int = 1
    ) -> list[dict[str, Any]]:
        """Lifecycle events, oldest first, optionally only those with `outcome`.

        With `wait` > 0 the server holds the call until at least `min_count` such events
        exist (or `wait` seconds pass): no client-side polling needed.
        """
        params: dict[str, str] = {}
        if outcome is not None:
            params["outcome"] = outcome
        if wait > 0:
            params["wait"] = repr(wait)
            params["min_count"] = str(min_count)
        result: list[dict[str, Any]] = (await self._call("GET", "events", params=params))["events"]
        return result

    async def clear_events(self) -> None:
        """Forget recorded events."""
        await self._call("DELETE", "events")

    async def clear(self) -> None:
        """Clear rules, requests and events: a clean slate between tests."""
        await self.clear_rules()
        await self.clear_requests()
        await self.clear_events()

    async def stats(self) -> dict[str, Any]:
        """Counters: requests_total, in_flight, max_in_flight, outcomes, recording."""
        result: dict[str, Any] = await self._call("GET", "stats")
        return result

    async def reset_stats(self) -> None:
        """Zero the counters."""
        await self._call("DELETE", "stats")

    async def health(self) -> bool:
        """True when the server answers its health check."""
        try:
            response = await self._http.get("/_dev/health")
        except httpx2.TransportError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
