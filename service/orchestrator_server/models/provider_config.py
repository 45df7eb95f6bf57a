"""How the operator configures a model endpoint (kept apart from the openai import)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One model endpoint as configured by the operator (never stored, never returned)."""

    name: str
    base_url: str
    api_key_env: str = ""
    default_model: str = "gpt-4o-mini"
    max_concurrency: int = 256
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    max_retries: int = 2

    def api_key(self) -> str:
        """The key from the named environment variable; a placeholder for keyless servers."""
        # Local servers (vLLM, Ollama, llama.cpp) accept any key; the openai client insists
        # on one, so keyless endpoints get a harmless placeholder.
        return os.environ.get(self.api_key_env, "") if self.api_key_env else "not-needed"
