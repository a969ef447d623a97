"""Speech engines: speech-to-text and text-to-speech behind one small interface each."""
