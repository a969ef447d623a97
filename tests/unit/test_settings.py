"""The settings object: grouped by concern, each field still read from the env var of its name."""

from __future__ import annotations

import pickle

import pytest

from app.settings import GROUPS, Settings, env_names


def test_each_field_is_read_from_its_own_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("SLM_THREADS", "3")
    monkeypatch.setenv("VAD_ENGINE", "webrtc")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.telephony.twilio_auth_token is not None
    assert settings.telephony.twilio_auth_token.get_secret_value() == "secret"
    assert settings.models.slm_threads == 3 and settings.speech.vad_engine == "webrtc"


def test_keywords_override_the_environment_by_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOX_PORT", "9000")
    settings = Settings(_env_file=None, velox_port=9100, rag_timeout_s=0.5)  # type: ignore[call-arg]
    assert settings.server.velox_port == 9100 and settings.knowledge.rag_timeout_s == 0.5


def test_a_bad_value_names_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_CONTEXT", "lots")
    with pytest.raises(ValueError, match="slm_context"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_every_field_belongs_to_exactly_one_group() -> None:
    fields = [name for model in GROUPS.values() for name in model.model_fields]
    assert len(fields) == len(set(fields)) == len(env_names())
    assert set(Settings.model_fields) == set(GROUPS)


def test_replace_changes_single_fields_and_refuses_unknown_ones() -> None:
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    changed = base.replace(velox_demo_agent=True, tool_timeout_s=1.5)
    assert changed.telephony.velox_demo_agent is True and changed.tools.tool_timeout_s == 1.5
    assert base.telephony.velox_demo_agent is None  # the original is untouched
    with pytest.raises(ValueError, match="not settings: velox_colour"):
        base.replace(velox_colour="blue")


def test_settings_travel_to_ray_replicas_and_back_from_yaml_unchanged() -> None:
    settings = Settings(_env_file=None, gemini_api_key="k", velox_port=8123)  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert Settings.model_validate(settings.model_dump()) == settings


def test_the_demo_agent_is_on_only_without_clerk_or_stripe() -> None:
    assert Settings(_env_file=None).demo_agent_enabled  # type: ignore[call-arg]
    assert not Settings(_env_file=None, stripe_secret_key="sk").demo_agent_enabled  # type: ignore[call-arg]
    forced = Settings(_env_file=None, stripe_secret_key="sk", velox_demo_agent=True)  # type: ignore[call-arg]
    assert forced.demo_agent_enabled
