"""Composes the Velox Serve application: `serve run graph:app` or `serve deploy serve_config.yaml`.

ingress ──► stt
        ──► llm_router ──► slm
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
from deployments.embedder import EmbedderDeployment
from deployments.ingress import Ingress
from deployments.llm_router import LLMRouterDeployment
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


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    """The bound application graph; usable as an app builder too (`graph:build_app`)."""
    parsed = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    config = parsed.config or (GPU_SERVE_CONFIG if parsed.slm == "vllm" else SERVE_CONFIG)
    options = deployment_options(config)
    stt = STTDeployment.options(**options["stt"]).bind()
    slm = SLMDeployment.options(**options["slm"]).bind(parsed.slm)
    router = LLMRouterDeployment.options(**options["llm_router"]).bind(slm)
    tts = TTSDeployment.options(**options["tts"]).bind()
    embedder = EmbedderDeployment.options(**options["embedder"]).bind()
    return Ingress.options(**options["ingress"]).bind(stt, router, tts, embedder)


def run_local(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    dashboard: bool = False,
    config: Path | None = None,
    num_cpus: int | None = None,
    timeout_s: float = 180,
) -> str:
    """Start Ray on this machine, deploy the app, wait until /health answers; return its URL.

    Used by `velox serve` (make run), the end-to-end tests and the call benchmark.
    """
    import time

    import httpx
    import ray
    from ray import serve

    ray.init(
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        configure_logging=False,
    )
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(AppArgs(config=config)), name="velox")
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Serve app did not answer {url}/health within {timeout_s} s")


def stop_local() -> None:
    """Tear down what `run_local` started."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


app = build_app()
