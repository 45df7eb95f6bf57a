"""The bundled development model server: started for a server on loopback when no
model provider is configured (`--dev-model auto`), or when asked (`--dev-model on`)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from .config import DEV_PROVIDER, Settings
from .models.provider_config import ProviderConfig
from .server_checks import listens_on_loopback

log = logging.getLogger("orchestrator")


async def start_dev_model(settings: Settings) -> tuple[Settings, Any]:
    """Start the bundled development model server if no provider is configured, and only
    for a server that listens on loopback (`--dev-model on` forces it). Its `/_dev/` API,
    which returns every prompt it recorded, answers only with a token nobody else has."""
    wanted = settings.dev_model.lower()
    if wanted == "off" or (wanted == "auto" and settings.providers):
        return settings, None
    if wanted == "auto" and not listens_on_loopback(settings.address):
        log.warning(
            "no model provider is configured and the server listens on %s, beyond this "
            "machine: the development model server is not started (configure providers, "
            "or pass --dev-model on); turns fail with PROVIDER_NOT_CONFIGURED",
            settings.address,
        )
        return settings, None
    from orchestrator_devmodel import DevModelConfig, DevModelProcess

    process = DevModelProcess(
        DevModelConfig(
            latency_ms=settings.dev_model_latency_ms,
            tokens_per_second=settings.dev_model_tokens_per_second,
            admin_token=secrets.token_urlsafe(32),
        )
    )
    await process.astart()
    log.warning(
        "no model provider is configured: using the bundled development model server at %s "
        "(deterministic echo answers; configure providers for real models)",
        process.base_url,
    )
    dev = ProviderConfig(name=DEV_PROVIDER, base_url=process.base_url, default_model="dev-echo")
    providers = [*settings.providers, dev]
    return settings.with_providers(providers, settings.default_provider or DEV_PROVIDER), process
