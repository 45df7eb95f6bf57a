"""Shared values of the client tests."""

from __future__ import annotations

from typing import Any

# A reply that streams for ~10 s at 20 tokens/s: long enough to cancel after its first
# token, without the test depending on how fast anything else is.
SLOW_WORDS = " ".join(f"w{i}" for i in range(200))
SLOW_RULE: dict[str, Any] = {
    "match": {"contains": "slowly"},
    "reply": {"text": SLOW_WORDS, "tokens_per_second": 20},
}
