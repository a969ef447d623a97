"""Twilio's wire format and REST API: webhook signatures, TwiML, Media Streams messages, mu-law
audio, and live-call updates (transfer, hang-up)."""
