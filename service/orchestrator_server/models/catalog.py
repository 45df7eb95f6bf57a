"""The configured model providers, by name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..core.errors import FailedPreconditionError, Reason
from ..core.types import ModelSpec
from .provider_config import ProviderConfig

if TYPE_CHECKING:
    from .openai_chat import OpenAIChatModel

log = logging.getLogger(__name__)


def _create_model(config: ProviderConfig) -> OpenAIChatModel:
    # Imported here, in a worker thread: the openai package takes ~0.5 s to import.
    from .openai_chat import OpenAIChatModel

    return OpenAIChatModel(config)


class ProviderCatalog:
    """One OpenAIChatModel per configured provider, created on first use; resolves
    agents' provider names.

    A client is created in a worker thread: building one loads the CA bundle into a TLS
    context (~80 ms of CPU), which on the event loop would stall every other call."""

    def __init__(self, configs: list[ProviderConfig], default_provider: str) -> None:
        self._configs = {c.name: c for c in configs}
        self._models: dict[str, OpenAIChatModel] = {}
        self._creating: dict[str, asyncio.Future[OpenAIChatModel]] = {}
        self.default_provider = default_provider

    async def resolve(self, provider: str) -> OpenAIChatModel:
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
        creating = self._creating.get(name)
        if creating is None:
            # One creation per provider, shared by every turn that needs it meanwhile;
            # shielded so that one caller's cancel does not cancel the others' wait.
            creating = self._creating[name] = asyncio.ensure_future(self._create(config))
        return await asyncio.shield(creating)

    async def _create(self, config: ProviderConfig) -> OpenAIChatModel:
        try:
            model = await asyncio.to_thread(_create_model, config)
        finally:
            del self._creating[config.name]
        self._models[config.name] = model
        return model

    async def warm_up(self) -> None:
        """Create every configured provider's client ahead of the first turn."""
        for name in self.names():
            try:
                await self.resolve(name)
            except Exception as error:  # the first turn will report it, with its reason
                log.warning("provider %s: its client could not be created: %s", name, error)

    def effective(self, spec: ModelSpec) -> tuple[str, str]:
        """The provider and model names an agent's model spec resolves to here (the
        defaults filled in), for the tenants' allowlists."""
        name = spec.provider or self.default_provider
        config = self._configs.get(name)
        return name, spec.model or (config.default_model if config else "")

    def names(self) -> list[str]:
        """Configured provider names."""
        return sorted(self._configs)

    async def close(self) -> None:
        """Close every client's connection pool."""
        for creating in list(self._creating.values()):
            with contextlib.suppress(Exception):
                await creating
        for model in self._models.values():
            await model.close()
