"""The configured model providers, by name."""

from __future__ import annotations

from ..core.errors import FailedPreconditionError
from .openai_chat import OpenAIChatModel, ProviderConfig


class ProviderCatalog:
    """Holds one OpenAIChatModel per configured provider; resolves agents' provider names."""

    def __init__(self, configs: list[ProviderConfig], default_provider: str) -> None:
        self._models = {c.name: OpenAIChatModel(c) for c in configs}
        self.default_provider = default_provider

    def resolve(self, provider: str) -> OpenAIChatModel:
        """The provider's model client (the default for an empty name)."""
        name = provider or self.default_provider
        model = self._models.get(name)
        if model is None:
            raise FailedPreconditionError(
                f"provider '{name}' is not configured on this server",
                reason="PROVIDER_NOT_CONFIGURED",
                metadata={"provider": name},
            )
        return model

    def names(self) -> list[str]:
        """Configured provider names."""
        return sorted(self._models)

    async def close(self) -> None:
        """Close every client's connection pool."""
        for model in self._models.values():
            await model.close()
