"""The configured model providers, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import FailedPreconditionError, Reason
from .provider_config import ProviderConfig

if TYPE_CHECKING:
    from .openai_chat import OpenAIChatModel


class ProviderCatalog:
    """One OpenAIChatModel per configured provider, created on first use; resolves
    agents' provider names."""

    def __init__(self, configs: list[ProviderConfig], default_provider: str) -> None:
        self._configs = {c.name: c for c in configs}
        self._models: dict[str, OpenAIChatModel] = {}
        self.default_provider = default_provider

    def resolve(self, provider: str) -> OpenAIChatModel:
        """The provider's model client (the default for an empty name)."""
        name = provider or self.default_provider
        model = self._models.get(name)
        if model is not None:
            return model
        config = self._configs.get(name)
        if config is None:
            raise FailedPreconditionError(
                f"provider '{name}' is not configured on this server",
                reason=Reason.PROVIDER_NOT_CONFIGURED,
                metadata={"provider": name},
            )
        # Imported on first use: the openai package takes ~0.5 s to import, which would
        # otherwise delay SERVING (server.py also warms it up in the background).
        from .openai_chat import OpenAIChatModel

        model = self._models[name] = OpenAIChatModel(config)
        return model

    def names(self) -> list[str]:
        """Configured provider names."""
        return sorted(self._configs)

    async def close(self) -> None:
        """Close every client's connection pool."""
        for model in self._models.values():
            await model.close()
