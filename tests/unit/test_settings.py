"""Every limit and quota is a setting: from the TOML file or ORCHESTRATOR_<NAME>, checked
to be at least 1, with the documented default."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_server.config import QUOTAS, Settings, load_settings


def test_each_quota_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for number, name in enumerate(QUOTAS, start=7):
        monkeypatch.setenv(f"ORCHESTRATOR_{name.upper()}", str(number))
    settings = load_settings()
    assert [getattr(settings, name) for name in QUOTAS] == list(range(7, 7 + len(QUOTAS)))


def test_quotas_come_from_the_toml_file_and_must_be_positive(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text("max_agents_per_tenant = 3\nmodel_tokens_per_minute_per_tenant = 500\n")
    settings = load_settings(str(config))
    assert (settings.max_agents_per_tenant, settings.model_tokens_per_minute_per_tenant) == (3, 500)
    assert settings.max_teams_per_tenant == Settings().max_teams_per_tenant
    config.write_text("max_stored_bytes_per_tenant = 0\n")
    with pytest.raises(ValueError, match="at least 1"):
        load_settings(str(config))
