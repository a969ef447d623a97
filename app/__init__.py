"""Velox: AI voice agents that answer phone calls. `app` is the product, importable without Ray."""
