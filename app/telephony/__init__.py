"""Twilio's wire format and REST API: webhook signatures, TwiML, Media Streams messages, mu-law
audio in 20 ms frames, and live-call updates (transfer, hang-up). Generic PCM work (resampling)
is app.audio's; the call loop is app.calls'."""
