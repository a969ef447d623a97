"""Runs the Serve application on this machine: start Ray, deploy graph:app, wait for /health.

The launcher for `velox serve` (make run), the end-to-end tests and the call benchmark; a cluster
deploys with `serve deploy serve_config.yaml` (or KubeRay) instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from app.settings import Settings
from graph import AppArgs, build_app


def run_local(
    *,
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    dashboard: bool = False,
    config: Path | None = None,
    num_cpus: int | None = None,
    timeout_s: float = 180,
) -> str:
    """Start Ray on this machine, deploy the app, wait until /health answers; return its URL.

    Used by `velox serve` (make run), the end-to-end tests and the call benchmark. `settings`
    (default: read from the environment now) are handed to every deployment.
    """
    import ray
    from ray import serve

    from deployments.proxy_limits import CALLBACK

    # Read by Serve's proxy actor when it starts; the actor inherits this process's environment.
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", CALLBACK)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        configure_logging=False,
    )
    serve.start(http_options={"host": host, "port": port})
    settings = settings or Settings()
    # The app judges its exposure by the address it listens on (unsigned voice and the demo
    # agent only on loopback), so it must be the address Serve really binds.
    server = settings.server.model_copy(update={"velox_host": host})
    args = AppArgs(config=config, settings=settings.model_copy(update={"server": server}))
    serve.run(build_app(args), name="velox")
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
