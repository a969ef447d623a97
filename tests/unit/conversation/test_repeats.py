"""The repeat check: a reply that opens with something the agent already said is caught before
it is spoken, and an ordinary reply is let through from its first words."""

from __future__ import annotations

from app.conversation.repeats import RepeatCheck
from app.llm.base import Message

GREETING = "Hello, thanks for calling Acme Outdoor. How can I help you today?"
HOURS = "We're open from nine to five, Monday to Friday."
HISTORY = [
    Message("assistant", GREETING),
    Message("user", "When are you open?"),
    Message("assistant", HOURS),
]


def stream(check: RepeatCheck, reply: str) -> list[str]:
    """What the check lets through after each word of `reply`, then at its end (the engine
    stops the reply once it is found to be a repeat)."""
    out = []
    for word in reply.split():
        out.append(check.push(word + " "))
        if check.repeated:
            return out
    return [*out, check.finish()]


def test_the_greeting_again_is_caught_and_nothing_of_it_is_spoken() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Can you check my order?")
    assert "".join(stream(check, GREETING)) == ""
    assert check.repeated and check.said_again == "hello thanks for calling acme outdoor"


def test_a_near_copy_of_the_last_answer_is_caught() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Can you check my order?")
    stream(check, "We are open from nine to five, Monday to Friday. Anything else?")
    assert check.repeated


def test_an_earlier_later_sentence_said_first_is_caught() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Do you sell tents?")
    stream(check, "How can I help you today?")
    assert check.repeated


def test_an_ordinary_reply_is_let_through_from_its_first_words() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Can you check my order?")
    released = stream(check, "Sure, what is your order number?")
    assert released[0] == "Sure, "  # no earlier sentence starts with "Sure"
    assert "".join(released) == "Sure, what is your order number? "
    assert not check.repeated


def test_a_reply_that_starts_like_an_earlier_one_goes_on_once_it_parts_from_it() -> None:
    check = RepeatCheck.for_turn(HISTORY, "And on Saturday?")
    released = stream(check, "We're open from ten to two on Saturday.")
    assert released[:5] == ["", "", "", "", ""]  # "We're open from ten to": could be HOURS
    assert "".join(released) == "We're open from ten to two on Saturday. "
    assert not check.repeated


def test_text_streamed_in_odd_pieces_is_judged_on_whole_words() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Can you check my order?")
    assert check.push("Hel") == ""
    assert check.push("lo, thanks for call") == ""
    check.push("ing Acme Outdoor. How")
    assert check.repeated


def test_the_callers_question_said_back_is_caught() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Do you sell kayaks as well?")
    stream(check, "Do you sell kayaks as well?")
    assert check.repeated


def test_a_caller_who_asks_to_hear_it_again_gets_it_again() -> None:
    for asked in ("Sorry, can you repeat that?", "When are you open?", "Pardon?"):
        check = RepeatCheck.for_turn(HISTORY, asked)
        assert "".join(stream(check, HOURS)) == HOURS + " "
        assert not check.repeated, asked


def test_short_stock_words_are_no_repeat() -> None:
    history = [Message("assistant", "Sure. Anything else?")]
    check = RepeatCheck.for_turn(history, "Can I order a cake?")
    assert "".join(stream(check, "Sure. What kind of cake?")) == "Sure. What kind of cake? "
    assert not check.repeated


def pieces(check: RepeatCheck, *streamed: str) -> str:
    return "".join(check.push(p) for p in streamed) + check.finish()


def test_a_reply_does_not_greet_the_caller_again() -> None:
    check = RepeatCheck.for_turn(HISTORY, "Hi, do you have almond croissants?")
    assert pieces(check, "Hi", ",", " almond", " croissants are in stock.") == (
        "Almond croissants are in stock."
    )
    check = RepeatCheck.for_turn(HISTORY, "Do you sell tents?")
    assert pieces(check, "Hello there! ", "Yes, we do.") == "Yes, we do."
    # Words that only start like a salutation go on as they are.
    check = RepeatCheck.for_turn(HISTORY, "Where is it?")
    assert pieces(check, "He", "re on Mill Street.") == "Here on Mill Street."
    check = RepeatCheck.for_turn(HISTORY, "Is Tom there?")
    assert pieces(check, "Hey", " Tom is out today.") == "Hey Tom is out today."


def test_a_salutation_stays_where_the_agent_has_not_spoken_or_it_is_all_there_is() -> None:
    assert pieces(RepeatCheck.for_turn([], "Hi!"), "Hi, ", "how can I help?") == (
        "Hi, how can I help?"
    )
    assert pieces(RepeatCheck.for_turn(HISTORY, "Hi again!"), "Hi!") == "Hi!"


def test_an_echo_of_the_callers_question_without_its_hi_goes_on_to_the_answer() -> None:
    # The repeat is judged on the words as written ("Hi," included):
    # a reply that opens by saying the question back, then answers it, is still an answer.
    check = RepeatCheck.for_turn(HISTORY, "Hi, what time do you open on Saturday?")
    said = "".join(stream(check, "What time do we open on Saturday? At ten."))
    assert not check.repeated and said.strip() == "What time do we open on Saturday? At ten."
