"""A validated view of a Chat Completions request, and the OpenAI-style API error.

Only what the server needs is validated (`model`, `messages`): the dev server must accept
whatever real clients send, so unknown fields are kept in the recorded body and ignored.
The derived values rules match on are computed once here rather than once per rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    """The OpenAI error `type` conventionally paired with an HTTP status."""
    if status >= 500:
        return "server_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


class ApiError(Exception):
    """An error answered as `{"error": {"message", "type", "code", "param"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type_: str | None = None,
        param: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_ or error_type_for(status)
        self.param = param
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        """The JSON error object, shaped like OpenAI's."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


def content_text(content: Any) -> str:
    """Text of a message `content`: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions body that replies and rules depend on."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    has_tools: bool
    last_user: str
    system: str
    last_role: str
    trailing_tool_results: tuple[str, ...]
    prompt_tokens: int

    @classmethod
    def parse(cls, body: Any) -> ChatRequest:
        """Validate a decoded JSON body; raise `ApiError(400)` on what the server can't use."""
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.", code="invalid_body")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(
                400, "You must provide a model parameter.", code="missing_model", param="model"
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400,
                "'messages' must be a non-empty array of message objects.",
                code="invalid_messages",
                param="messages",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ApiError(
                    400,
                    f"messages[{index}] must be an object with a string 'role'.",
                    code="invalid_messages",
                    param=f"messages[{index}]",
                )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        tools = body.get("tools")
        return cls(
            body=body,
            model=model,
            messages=messages,
            stream=body.get("stream") is True,
            include_usage=include_usage,
            has_tools=isinstance(tools, list) and bool(tools),
            last_user=_last_content(messages, "user"),
            system="\n".join(
                content_text(m.get("content"))
                for m in messages
                if m["role"] in ("system", "developer")
            ),
            last_role=messages[-1]["role"],
            trailing_tool_results=_trailing_tool_results(messages),
            prompt_tokens=sum(len(content_text(m.get("content")).split()) for m in messages),
        )


def _last_content(messages: list[dict[str, Any]], role: str) -> str:
    for message in reversed(messages):
        if message["role"] == role:
            return content_text(message.get("content"))
    return ""


def _trailing_tool_results(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    # Only the tool messages after the last assistant turn answer the pending tool calls.
    results: list[str] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(content_text(message.get("content")))
    return tuple(reversed(results))
