"""Composes the Velox Serve application: `serve run graph:app` or `serve deploy serve_config.yaml`.

ingress ──► stt
        ──► llm_router ──► slm
        ──► tts

Replica resources and autoscaling live in serve_config.yaml only; the bound app applies the same
per-deployment options, so `serve run graph:app`, `velox serve` and `serve deploy` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.llm_router import LLMRouterDeployment
from deployments.slm import SLMDeployment
from deployments.stt import STTDeployment
from deployments.tts import TTSDeployment

SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")


def deployment_options(config_path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Per-deployment options (resources, autoscaling) from the production Serve config."""
    config = yaml.safe_load(config_path.read_text())
    (application,) = config["applications"]
    return {
        d["name"]: {k: v for k, v in d.items() if k != "name"} for d in application["deployments"]
    }


def build_app(args: dict[str, str] | None = None) -> Application:
    """The bound application graph; usable as an app builder too (`graph:build_app`)."""
    options = deployment_options(
        Path(args["config"]) if args and "config" in args else SERVE_CONFIG
    )
    stt = STTDeployment.options(**options["stt"]).bind()
    slm = SLMDeployment.options(**options["slm"]).bind()
    router = LLMRouterDeployment.options(**options["llm_router"]).bind(slm)
    tts = TTSDeployment.options(**options["tts"]).bind()
    return Ingress.options(**options["ingress"]).bind(stt, router, tts)


app = build_app()
