"""Speech engines: speech-to-text and text-to-speech behind one small interface each, where
text is cut into the pieces speech is made of (`pieces`), and how written text is said aloud
(`spoken_text`)."""
