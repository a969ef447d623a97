"""The HTTP and WebSocket surface: the Twilio voice webhook, the media stream, health, metrics."""
