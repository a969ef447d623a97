"""Composes the Velox Serve application: `serve run graph:app` or `serve deploy serve_config.yaml`.

ingress ──► stt
        ──► llm_router ──► slm
        ──► tts
"""

from __future__ import annotations

from ray.serve import Application

from deployments.ingress import Ingress
from deployments.llm_router import LLMRouterDeployment
from deployments.slm import SLMDeployment
from deployments.stt import STTDeployment
from deployments.tts import TTSDeployment


def build_app(_args: dict[str, str] | None = None) -> Application:
    """The bound application graph (also usable as an app builder: `graph:build_app`)."""
    stt = STTDeployment.bind()
    slm = SLMDeployment.bind()
    router = LLMRouterDeployment.bind(slm)
    tts = TTSDeployment.bind()
    return Ingress.bind(stt, router, tts)


app = build_app()
