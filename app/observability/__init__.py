"""Metrics (Prometheus names from design.md) and logging set-up."""
