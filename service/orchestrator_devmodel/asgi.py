"""Minimal raw-ASGI plumbing: types, body reading, JSON responses, deliberate cuts.

The server is raw ASGI (no framework) because benchmarks drive it at hundreds of
streamed calls per second on the same cores as the service being measured.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .encoding import dumps
from .request import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class ConnectionCut(Exception):
    """Raised by the app to make uvicorn drop the connection without ending the body.

    uvicorn closes the transport when an app fails after the response started, which is
    exactly the abrupt, `[DONE]`-less end a broken upstream produces.
    """


class ClientGone(Exception):
    """The client disconnected before the request body was read."""


class _HideDeliberateCuts(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" traceback for deliberate cuts."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and isinstance(exc_info[1], ConnectionCut))


_FILTER = _HideDeliberateCuts()


def install_log_filter() -> None:
    """Install (once) the filter hiding deliberate cuts from the uvicorn error log."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


async def read_body(receive: Receive) -> bytes:
    """The whole request body; raise `ClientGone` if the client left first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A complete response with a known length (JSON content type unless overridden)."""
    all_headers = [JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(body))]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(
    send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A complete JSON response."""
    await send_bytes(send, status, dumps(obj), headers)


async def send_error(
    send: Send, error: ApiError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An OpenAI-style error response (`error.headers` plus `headers`)."""
    await send_json(send, error.status, error.body(), [*error.headers, *(headers or [])])
