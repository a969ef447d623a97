"""Both local engines fit a long conversation into the context the same way: oldest turns go."""

from __future__ import annotations

from typing import Any

import pytest

from app.llm.llama_cpp_llm import fit_context


def render(turns: list[dict[str, Any]]) -> list[int]:
    """Ten tokens a turn, numbered by the turn's index in the original conversation."""
    return [turn["n"] for turn in turns for _ in range(10)]


def conversation(system: bool) -> list[dict[str, Any]]:
    first = [{"role": "system", "n": 0}] if system else []
    return first + [{"role": "user" if n % 2 else "assistant", "n": n} for n in range(1, 6)]


def test_a_prompt_that_fits_is_left_whole() -> None:
    assert len(fit_context(conversation(True), render, context=100, room=40)) == 60


def test_the_oldest_turns_go_first_and_the_system_prompt_stays() -> None:
    tokens = fit_context(conversation(True), render, context=70, room=30)
    assert sorted(set(tokens)) == [0, 3, 4, 5]


def test_without_a_system_prompt_the_first_turn_goes() -> None:
    tokens = fit_context(conversation(False), render, context=50, room=10)
    assert sorted(set(tokens)) == [2, 3, 4, 5]


def test_a_last_turn_that_cannot_fit_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="SLM_CONTEXT"):
        fit_context(conversation(True), render, context=25, room=10)
