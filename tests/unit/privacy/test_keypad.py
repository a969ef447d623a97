"""Digits keyed in a run are masked after the first; menu choices and * and # are kept."""

from __future__ import annotations

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationState
from app.privacy import MASKED_KEY_PRESS, KeypadRun, mask_key_after, pressed_digit


def press(digit: str) -> str:
    """The words the conversation gives a key press (the privacy module must recognise them)."""
    agent = AgentProfile(id="a", name="Desk", system_prompt="Be brief.", greeting="Hi")
    return ConversationState.start(agent).press(digit)


def test_key_press_words_are_recognised() -> None:
    assert pressed_digit(press("4")) and pressed_digit(MASKED_KEY_PRESS)
    assert not pressed_digit(press("#")) and not pressed_digit(press("*"))
    assert not pressed_digit("I pressed 4")


def test_a_card_number_keyed_in_keeps_at_most_its_first_digit() -> None:
    run = KeypadRun()
    kept = [run.screen(press(d), at=0.4 * i) for i, d in enumerate("4242424242424242")]
    assert kept[0] == press("4")
    assert kept[1:] == [MASKED_KEY_PRESS] * 15
    assert not any(d in "".join(kept[1:]) for d in "0123456789")


def test_a_security_code_keyed_in() -> None:
    run = KeypadRun()
    kept = [run.screen(press(d), at=t) for d, t in (("7", 10.0), ("3", 10.8), ("9", 11.5))]
    assert kept == [press("7"), MASKED_KEY_PRESS, MASKED_KEY_PRESS]


def test_menu_choices_apart_are_kept() -> None:
    run = KeypadRun()
    assert run.screen(press("1"), at=0.0) == press("1")
    assert run.screen(press("2"), at=20.0) == press("2")  # after the agent read the next menu
    # Words between two keys end a run, and so does # (the caller finished a number).
    assert run.screen(press("3"), at=21.0) == MASKED_KEY_PRESS
    assert run.screen("Sorry, billing please", at=21.5) == "Sorry, billing please"
    assert run.screen(press("3"), at=22.0) == press("3")
    assert run.screen(press("#"), at=22.5) == press("#")
    assert run.screen(press("4"), at=23.0) == press("4")


def test_playground_runs_come_from_the_history() -> None:
    assert mask_key_after(None, press("1")) == press("1")
    assert mask_key_after("billing please", press("1")) == press("1")
    assert mask_key_after(press("1"), press("2")) == MASKED_KEY_PRESS
    assert mask_key_after(MASKED_KEY_PRESS, press("2")) == MASKED_KEY_PRESS
    assert mask_key_after(press("1"), "hello") == "hello"
