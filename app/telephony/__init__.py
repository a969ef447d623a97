"""Twilio's wire format: webhook signatures, TwiML, Media Streams messages, mu-law audio."""
