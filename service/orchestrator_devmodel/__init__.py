"""Development model server: an OpenAI-compatible Chat Completions endpoint, scripted.

Used for offline development, tests and benchmarks. Raw ASGI on uvicorn (httptools,
uvloop in the CLI), answering from a rule script with deterministic tokens.

Start it:
  * CLI: `python -m orchestrator_devmodel --port 0 [--api-key K]
    [--latency-ms X] [--tokens-per-second R] [--default-tokens N] [--models a,b]
    [--no-record] [--max-recorded N] [--rules-file rules.json] [--log-level L]`;
    prints `DEVMODEL_LISTENING http://127.0.0.1:PORT/v1` once listening.
  * in-process: `url = await DevModelServer(DevModelConfig(...)).start()` ... `stop()`;
  * subprocess: `DevModelProcess(DevModelConfig(...))` (`start()`/`stop()`, or async
    `astart()`/`astop()`, or as a (async) context manager); `.base_url`.
Script it with `DevModelAdmin(base_url)` (`set_rules`, `add_rules`, `clear_rules`,
`requests`, `clear_requests`, `events`, `clear_events`, `stats`, `clear`).

Rules (first matching, non-exhausted rule wins; unknown keys are rejected with 400):
  {"name": str, "times": int (only the first N matching requests),
   "match": {"model": str (exact), "contains": str (in the last user message),
             "system_contains": str (in system/developer messages),
             "last_role": str (e.g. "tool"), "has_tools": bool},
   "reply": {"text": str ("{last_user}" is replaced by the last user message),
             "tool_calls": [{"name": str, "arguments": object | str, "id": str?}],
             "echo_tool_results": bool (text = trailing tool messages joined by "\\n"),
             "error": {"status": int, "message": str, "code": str, "type": str,
                       "retry_after": seconds (Retry-After and retry-after-ms headers),
                       "should_retry": bool (x-should-retry header)},
             "latency_ms": number, "tokens_per_second": number (0 = unpaced),
             "stall": bool (stream: headers + role chunk, then nothing until the client
                      leaves; non-streamed: no response at all),
             "cut_after_tokens": int (send N token chunks, then drop the connection)}}
A reply without text/tool_calls/echo keeps the default answer ("Echo: <last user
message>", or "tok1 ... tokN" with `--default-tokens N`) with the rule's pace/faults.

Streams: a role chunk, one chunk per word token (leading whitespace kept, so the deltas
concatenate to the exact text), tool calls the OpenAI way (id/name chunk, then argument
fragments), a finish chunk, the usage chunk if `stream_options.include_usage`, then
`data: [DONE]`. Usage: prompt_tokens = whitespace-separated words of all message
contents; completion_tokens = content tokens + tool-call argument fragments.

Cut streams: `cut_after_tokens` ends the TCP connection inside the chunked body, so with
openai 3.54 the `async for` over the stream raises `openai.APIConnectionError` (from
`httpx2.RemoteProtocolError`, "peer closed connection without sending complete message
body"). A cut non-streamed response is retried by the client like any connection error.

Events (`GET /_dev/events`): `{request_id, started_at, finished_at, outcome, status,
rule, chunks_sent}`, outcome one of "completed", "client_disconnected" (finished_at is
when the server noticed), "cut", "error". Unpaced responses (no latency, pacing or stall)
are written without yielding, so they are never reported as disconnected.
"""

from .admin import DevModelAdmin
from .app import DEFAULT_MODEL, DevModelApp
from .config import DevModelConfig, config_from_args
from .server import LISTENING_PREFIX, DevModelProcess, DevModelServer, base_url_for

__all__ = [
    "DEFAULT_MODEL",
    "LISTENING_PREFIX",
    "DevModelAdmin",
    "DevModelApp",
    "DevModelConfig",
    "DevModelProcess",
    "DevModelServer",
    "base_url_for",
    "config_from_args",
]
