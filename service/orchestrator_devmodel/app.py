"""The ASGI application: routing, API-key auth, the `/_dev/` admin API, and shutdown.

Routes:
  POST /v1/chat/completions       OpenAI Chat Completions (see `chat.py`)
  GET  /v1/models[/{id}]          configured models
  GET|PUT|POST|DELETE /_dev/rules the script (PUT replaces, POST appends, DELETE clears)
  GET|DELETE /_dev/requests       recorded request bodies
  GET|DELETE /_dev/events         connection lifecycle events; GET takes `outcome`,
                                  `wait` (seconds) and `min_count` to wait server-side
  GET|DELETE /_dev/stats          counters (DELETE resets them)
  GET  /_dev/health
`/_dev/` is never behind the API key: it is a local test/admin surface, behind the admin
token when one is configured (the orchestrator always sets one for the server it starts).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from .asgi import (
    ClientGone,
    ConnectionCut,
    Receive,
    Scope,
    Send,
    install_log_filter,
    read_body,
    send_error,
    send_json,
)
from .chat import ChatHandler, Exchange
from .config import ADMIN_TOKEN_HEADER, DevModelConfig
from .recorder import Recorder
from .replies import Replier
from .request import ApiError
from .rules import Rule, RuleBook, RuleError, parse_rules

DEFAULT_MODEL = "devmodel"
"""Listed by `GET /v1/models` when `--models` is not given (any name is then accepted)."""

_MAX_WAIT_S = 30.0


class DevModelApp:
    """OpenAI-compatible ASGI app answering from a rule script."""

    def __init__(self, config: DevModelConfig) -> None:
        self.config = config
        self.rules = RuleBook(parse_rules(config.initial_rules()))
        self.recorder = Recorder(enabled=config.record, capacity=config.max_recorded)
        self._models = frozenset(config.models)
        self._auth = None if config.api_key is None else f"Bearer {config.api_key}".encode()
        self._admin_token = None if config.admin_token is None else config.admin_token.encode()
        self._chat = ChatHandler(
            rules=self.rules,
            recorder=self.recorder,
            replier=Replier(config),
            models=self._models,
            is_aborting=lambda: self._aborting,
        )
        # Request ids must stay unique across server restarts within one test run.
        self._id_prefix = f"req_{secrets.token_hex(3)}_"
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._aborting = False
        install_log_filter()

    def abort(self) -> None:
        """Cut every in-flight request (stalled ones would otherwise block shutdown)."""
        self._aborting = True
        for task in list(self._tasks):
            task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._route(scope, receive, send)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            if not self._aborting:
                raise
            task.uncancel()
            raise ConnectionCut("devmodel server shutting down") from None
        finally:
            self._tasks.discard(task)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._dispatch(scope, receive, send)
        except ApiError as err:
            # Only raised before a response starts (bad method, path, auth...).
            await send_error(send, err)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/v1/"):
            if self._auth is not None and not self._authorized(scope):
                raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
            if path == "/v1/chat/completions":
                _require(method, "POST")
                received_at = time.time()
                exchange = Exchange(
                    f"{self._id_prefix}{next(self._ids):06d}", received_at, _traceparent(scope)
                )
                body = await read_body(receive)
                await self._chat.handle(body, exchange, receive, send)
            elif path == "/v1/models":
                _require(method, "GET")
                await send_json(send, 200, {"object": "list", "data": self._model_list()})
            elif path.startswith("/v1/models/"):
                _require(method, "GET")
                await self._model(path.removeprefix("/v1/models/"), send)
            else:
                raise _not_found(path)
        elif path.startswith("/_dev/"):
            if path != "/_dev/health" and not self._admin_allowed(scope):
                raise ApiError(401, "the /_dev/ API needs the admin token", code="invalid_token")
            await send_json(
                send, 200, await self._admin(path.removeprefix("/_dev/"), method, scope, receive)
            )
        else:
            raise _not_found(path)

    def _admin_allowed(self, scope: Scope) -> bool:
        if self._admin_token is None:
            return True
        header = ADMIN_TOKEN_HEADER.encode()
        for name, value in scope["headers"]:
            if name == header:
                return hmac.compare_digest(value, self._admin_token)
        return False

    def _authorized(self, scope: Scope) -> bool:
        assert self._auth is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._auth)
        return False

    def _model_list(self) -> list[dict[str, Any]]:
        names = sorted(self._models) if self._models else [DEFAULT_MODEL]
        return [_model_object(name) for name in names]

    async def _model(self, name: str, send: Send) -> None:
        if self._models and name not in self._models:
            raise ApiError(
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        await send_json(send, 200, _model_object(name))

    async def _admin(
        self, what: str, method: str, scope: Scope, receive: Receive
    ) -> dict[str, Any]:
        recorder = self.recorder
        if what == "health":
            return {"status": "ok"}
        if what == "rules":
            if method == "GET":
                return {"rules": self.rules.describe()}
            if method == "DELETE":
                self.rules.clear()
                return {"rules": []}
            _require(method, "PUT", "POST")
            rules = _parse_rules_body(await read_body(receive))
            if method == "PUT":
                self.rules.replace(rules)
            else:
                self.rules.extend(rules)
            return {"rules": self.rules.describe()}
        if what == "requests":
            if method == "DELETE":
                recorder.clear_requests()
                return {"requests": []}
            _require(method, "GET")
            return {"requests": recorder.requests()}
        if what == "events":
            if method == "DELETE":
                recorder.clear_events()
                return {"events": []}
            _require(method, "GET")
            return {"events": await self._events(scope)}
        if what == "stats":
            if method == "DELETE":
                recorder.reset_stats()
            else:
                _require(method, "GET")
            return recorder.stats()
        raise _not_found(f"/_dev/{what}")

    async def _events(self, scope: Scope) -> list[dict[str, Any]]:
        query = parse_qs(scope.get("query_string", b"").decode())
        outcome = query.get("outcome", [None])[0]
        try:
            wait = min(float(query.get("wait", ["0"])[0]), _MAX_WAIT_S)
            min_count = int(query.get("min_count", ["1"])[0])
        except ValueError:
            raise ApiError(400, "'wait' must be a number and 'min_count' an integer") from None
        if wait <= 0:
            return self.recorder.events(outcome)
        return await self.recorder.wait_for_events(outcome=outcome, min_count=min_count, wait=wait)


def _require(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, f"Method {method} not allowed; use {', '.join(allowed)}.")


def _not_found(path: str) -> ApiError:
    return ApiError(404, f"Unknown path {path}.", code="unknown_url")


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "devmodel"}


def _parse_rules_body(raw: bytes) -> list[Rule]:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        raise ApiError(400, 'The body must be JSON: {"rules": [...]}.') from None
    if isinstance(data, dict):
        data = data.get("rules")
    try:
        return parse_rules(data)
    except RuleError as err:
        raise ApiError(400, str(err), code="invalid_rules") from None


def _traceparent(scope: Scope) -> str | None:
    """The request's W3C `traceparent` header, if any (recorded with the request)."""
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return bytes(value).decode("latin-1")
    return None
