from app.speech.pieces import SentenceSplitter


def feed(text: str, step: int = 3) -> list[str]:
    splitter = SentenceSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.push(text[i : i + step])
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_they_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("We open at nine.") == []  # no space yet: maybe "nine.5"
    assert splitter.push(" See") == ["We open at nine."]
    assert splitter.flush() == ["See"]


def test_abbreviations_and_decimals_do_not_split() -> None:
    text = "Dr. Smith sees patients at 3.5 hours past noon. Call back soon!"
    assert feed(text) == ["Dr. Smith sees patients at 3.5 hours past noon.", "Call back soon!"]


def test_the_first_long_clause_goes_early() -> None:
    text = "Sure, I can help with that order today, just give me the number please. Thanks."
    assert feed(text) == [
        "Sure, I can help with that order today,",
        "just give me the number please.",
        "Thanks.",
    ]


def test_short_first_clause_waits_for_the_sentence() -> None:
    assert feed("Yes, we do. Anything else?") == ["Yes, we do.", "Anything else?"]
