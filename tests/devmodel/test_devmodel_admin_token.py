"""The development model server's `/_dev/` API can be made private, and the orchestrator
never starts it for a server that listens beyond this machine."""

from __future__ import annotations

import httpx2
import pytest

from orchestrator_devmodel import DevModelAdmin, DevModelConfig, DevModelProcess, DevModelServer
from orchestrator_server.config import Settings
from orchestrator_server.dev_model_setup import start_dev_model
from orchestrator_server.server_checks import listens_on_loopback


async def test_the_admin_api_answers_only_with_the_token() -> None:
    server = DevModelServer(DevModelConfig(admin_token="s3cret"))
    await server.start()
    try:
        async with DevModelAdmin(server.base_url) as stranger:
            assert await stranger.health()  # the health check stays open
            with pytest.raises(httpx2.HTTPStatusError) as refused:
                await stranger.requests()
            assert refused.value.response.status_code == 401
        async with DevModelAdmin(server.base_url, admin_token="s3cret") as owner:
            assert await owner.requests() == []
        async with DevModelAdmin(server.base_url, admin_token="wrong") as guesser:
            with pytest.raises(httpx2.HTTPStatusError):
                await guesser.rules()
    finally:
        await server.stop()


async def test_a_child_process_gets_its_token_from_the_environment_not_argv() -> None:
    process = DevModelProcess(DevModelConfig(admin_token="from-env"))
    assert "from-env" not in " ".join(process.argv())
    await process.astart()
    try:
        async with DevModelAdmin(process.base_url) as stranger:
            with pytest.raises(httpx2.HTTPStatusError):
                await stranger.stats()
        async with DevModelAdmin(process.base_url, admin_token="from-env") as owner:
            assert await owner.requests() == []
    finally:
        await process.astop()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:1", True),
        ("[::1]:50051", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.1.2.3:50051", False),
        ("orchestrator.internal:50051", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert listens_on_loopback(address) is loopback


async def test_auto_never_starts_the_dev_model_for_a_server_beyond_this_machine() -> None:
    settings, process = await start_dev_model(Settings(address="0.0.0.0:50051", dev_model="auto"))
    assert process is None and settings.providers == ()
