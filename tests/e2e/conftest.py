"""One real Ray Serve application (graph.py, real models) for the whole session."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

TWILIO_TOKEN = "e2e-twilio-auth-token"
# These tests check what the agent says and does, not how fast: bench/ measures speed. On a
# slower CPU (an AVX2-only EPYC prefills the SLM's cold prompt in ~7 s) the answer may follow
# a holding phrase by several seconds, so the caller waits longer than a person would, and the
# server's deadlines leave room for a cold prompt.
CALLER_PATIENCE_S = 8.0
SLOW_CPU_DEADLINES = {"LLM_FIRST_TOKEN_TIMEOUT_S": "30", "LLM_TOTAL_TIMEOUT_S": "60"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def demo_backend_url() -> Iterator[str]:
    """The example business API the agents' tools call."""
    from harness.demo_backend import create_demo_backend
    from harness.serving import serving

    with serving(create_demo_backend()) as url:
        yield url


TOOL_URL_VARS = ("ORDER_API_URL", "INVENTORY_API_URL", "CALENDAR_API_URL", "CRM_API_URL")


@pytest.fixture(scope="session")
def serve_url(postgres_url: str, demo_backend_url: str) -> Iterator[str]:
    """Base URL of graph:app on a local Ray cluster, signatures enforced, calls recorded in the
    test Postgres (where the demo organization answers the simulated numbers), tools pointed at
    the demo business API."""
    import launch

    # run_local reads the settings from this environment and hands them to every replica.
    for name in (*TOOL_URL_VARS, "HANDOFF_API_URL"):
        os.environ[name] = demo_backend_url
    os.environ["TWILIO_AUTH_TOKEN"] = TWILIO_TOKEN
    os.environ["DATABASE_URL"] = postgres_url
    os.environ["VELOX_DEMO_AGENT"] = "true"
    os.environ["VELOX_ALLOW_PRIVATE_TOOL_URLS"] = "true"  # tenants' tool servers on 127.0.0.1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["SLM_TEMPERATURE"] = "0"  # greedy decoding: the same question gets the same answer
    os.environ.update(SLOW_CPU_DEADLINES)
    try:
        yield launch.run_local(port=_free_port(), num_cpus=2)
    finally:
        launch.stop_local()
        os.environ.pop("TWILIO_AUTH_TOKEN", None)
        os.environ.pop("SLM_TEMPERATURE", None)
        for name in SLOW_CPU_DEADLINES:
            os.environ.pop(name, None)
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("VELOX_DEMO_AGENT", None)
        os.environ.pop("VELOX_ALLOW_PRIVATE_TOOL_URLS", None)
        for name in (*TOOL_URL_VARS, "HANDOFF_API_URL"):
            os.environ.pop(name, None)


@pytest.fixture(scope="session")
def speech_engines():  # type: ignore[no-untyped-def]
    """The caller's voice and ears: local TTS for its lines, local STT for the agent's replies."""
    from app.speech.piper_tts import PiperTTS
    from app.speech.whisper_stt import WhisperSTT

    return PiperTTS(), WhisperSTT()
