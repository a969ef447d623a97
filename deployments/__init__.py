"""Thin Ray Serve deployments, one per model role; each wraps an engine from `app/`."""
