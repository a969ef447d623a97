"""Tools for the GPU check of the vLLM path (check.sh runs it on a machine without network)."""
