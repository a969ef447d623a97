"""The HTTP and WebSocket surface: the Twilio voice webhook and media stream, the tenant REST API
(`/api/*`), health and metrics. Routes take what they need through the `Annotated` dependencies
of `deps`, never through the call hub."""
