"""The per-call loop: VAD, turn-taking, barge-in, marks, DTMF and the live transcript of a call."""
