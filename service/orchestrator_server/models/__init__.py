"""Model providers used by the orchestrator (any OpenAI-compatible endpoint)."""
