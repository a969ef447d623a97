"""Speech engines: speech-to-text and text-to-speech behind one small interface each, and where
text is cut into the pieces speech is made of (`pieces`)."""
