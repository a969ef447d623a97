"""Composes the Velox Serve application: `serve run graph:app` or `serve deploy serve_config.yaml`.

ingress ──► stt
        ──► slm        (the LLM router runs inside the ingress: Gemini tiers are API calls)
        ──► tts
        ──► embedder

Replica resources and autoscaling live in serve_config.yaml only; the bound app applies the same
per-deployment options, so `serve run graph:app`, `velox serve` and `serve deploy` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from app.engines import SLMBackend
from app.settings import Settings, get_settings
from deployments.embedder import EmbedderDeployment
from deployments.ingress import Ingress
from deployments.slm import SLMDeployment
from deployments.stt import STTDeployment
from deployments.tts import TTSDeployment

SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")
GPU_SERVE_CONFIG = Path(__file__).with_name("serve_config.gpu.yaml")


def deployment_options(config_path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Per-deployment options (resources, autoscaling) from the production Serve config."""
    config = yaml.safe_load(config_path.read_text())
    (application,) = config["applications"]
    return {
        d["name"]: {k: v for k, v in d.items() if k != "name"} for d in application["deployments"]
    }


class AppArgs(BaseModel):
    """Arguments of the app builder, validated by Serve: `serve run graph:build_app slm=vllm`."""

    model_config = ConfigDict(extra="forbid")

    slm: SLMBackend = Field(
        default="llama_cpp", description="llama_cpp on CPU; vllm on a GPU (pip install .[gpu])"
    )
    config: Path | None = Field(
        default=None, description="the Serve config whose deployment options to apply"
    )
    # Read from the environment where the app is built and handed to every deployment, so a
    # replica never reads settings of its own (a worker node's environment may differ).
    settings: Settings = Field(default_factory=get_settings)


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    """The bound application graph; usable as an app builder too (`graph:build_app`)."""
    parsed = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    config = parsed.config or (GPU_SERVE_CONFIG if parsed.slm == "vllm" else SERVE_CONFIG)
    options = deployment_options(config)
    settings = parsed.settings
    stt = STTDeployment.options(**options["stt"]).bind(settings)
    slm = SLMDeployment.options(**options["slm"]).bind(settings, parsed.slm)
    tts = TTSDeployment.options(**options["tts"]).bind(settings)
    embedder = EmbedderDeployment.options(**options["embedder"]).bind(settings)
    return Ingress.options(**options["ingress"]).bind(settings, stt, slm, tts, embedder)


app = build_app()
