"""An agent's tier policy and knowledge settings: one model each, for the API and the stored row."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.api.agents import AgentCreate, AgentFields, AgentOut
from app.conversation.routing import DEFAULT_MIN_CONFIDENCE, TierPolicy
from app.llm.base import Tier
from app.rag.policy import KnowledgeSettings


def test_the_api_validates_with_the_packages_own_models() -> None:
    for model in (AgentCreate, AgentFields, AgentOut):
        assert model.model_fields["llm_policy"].annotation in (TierPolicy, TierPolicy | None)
        assert model.model_fields["knowledge"].annotation in (
            KnowledgeSettings,
            KnowledgeSettings | None,
        )


def test_defaults_are_defined_once() -> None:
    body = AgentCreate(name="Desk", system_prompt="Be brief.", greeting="Hi!")
    assert body.llm_policy.min_confidence == DEFAULT_MIN_CONFIDENCE
    assert body.llm_policy == TierPolicy() == TierPolicy.from_json({})
    assert body.knowledge == KnowledgeSettings() == KnowledgeSettings.from_json(None)


def test_stored_json_is_read_back_as_written() -> None:
    policy = TierPolicy(default_tier=Tier.FLASH, min_confidence=0.7)
    stored = policy.model_dump(mode="json")
    assert stored == {
        "default_tier": "flash",
        "max_tier": "pro",
        "escalate_when_unsure": True,
        "min_confidence": 0.7,
    }
    assert TierPolicy.from_json(stored) == policy and policy.default_tier is Tier.FLASH
    knowledge = KnowledgeSettings(top_k=5)
    assert KnowledgeSettings.from_json(knowledge.model_dump(mode="json")) == knowledge


def test_a_stored_row_may_hold_keys_a_client_may_not_send() -> None:
    # A newer version's keys in a row are ignored when read; from a client they are refused.
    assert TierPolicy.from_json({"max_tier": "flash", "later": 1}).max_tier is Tier.FLASH
    assert KnowledgeSettings.from_json({"top_k": 2, "later": 1}).top_k == 2
    with pytest.raises(ValidationError):
        TierPolicy.model_validate({"later": 1})
    with pytest.raises(ValidationError):
        KnowledgeSettings.model_validate({"later": 1})
