"""serve_config.yaml (and its GPU variant) validated with Ray's own schema, every key checked
strictly, and held against the deployments graph.py actually binds."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve import Application
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import DeploymentSchema, ServeDeploySchema

import graph

CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"
GPU_CONFIG = CONFIG.with_name("serve_config.gpu.yaml")


def load(path: Path = CONFIG) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def unknown_keys(config: dict[str, Any]) -> list[str]:
    """Deployment and autoscaling keys Ray does not know. Serve ignores them silently (its
    schemas allow extra keys), so a misspelled `max_ongoing_request` would deploy unnoticed."""
    problems = []
    for deployment in config["applications"][0]["deployments"]:
        name = deployment["name"]
        problems += [f"{name}.{k}" for k in set(deployment) - set(DeploymentSchema.model_fields)]
        scaling = set(deployment.get("autoscaling_config", {}))
        unknown = scaling - set(AutoscalingConfig.model_fields)
        problems += [f"{name}.autoscaling_config.{k}" for k in unknown]
    return problems


def bound_deployments(app: Application) -> set[str]:
    """Names of every deployment bound into `app`, the ingress and what it was handed."""
    found: set[str] = set()
    pending = [app]
    while pending:
        deployment = pending.pop()._bound_deployment
        found.add(deployment.name)
        arguments = [*deployment.init_args, *deployment.init_kwargs.values()]
        pending += [a for a in arguments if isinstance(a, Application)]
    return found


@pytest.mark.parametrize("path", [CONFIG, GPU_CONFIG], ids=["cpu", "gpu"])
def test_serve_config_matches_rays_schema_with_no_unknown_keys(path: Path) -> None:
    config = load(path)
    ServeDeploySchema.model_validate(config)
    assert unknown_keys(config) == []


def test_a_misspelled_key_is_caught_though_rays_schema_accepts_it() -> None:
    config = copy.deepcopy(load())
    ingress = config["applications"][0]["deployments"][0]
    ingress["max_ongoing_request"] = ingress.pop("max_ongoing_requests")
    ingress["autoscaling_config"]["target_ongoing_request"] = 5
    ServeDeploySchema.model_validate(config)  # Ray itself says nothing
    assert sorted(unknown_keys(config)) == [
        "ingress.autoscaling_config.target_ongoing_request",
        "ingress.max_ongoing_request",
    ]


@pytest.mark.parametrize(("path", "slm"), [(CONFIG, "llama_cpp"), (GPU_CONFIG, "vllm")])
def test_the_graph_binds_exactly_the_configured_deployments(path: Path, slm: str) -> None:
    configured = {d["name"] for d in load(path)["applications"][0]["deployments"]}
    app = graph.build_app(graph.AppArgs(slm=slm, config=path))  # type: ignore[arg-type]
    assert bound_deployments(app) == configured == {"ingress", "stt", "slm", "tts", "embedder"}


def test_one_replica_of_each_fits_two_cores_and_calls_drain() -> None:
    deployments = load()["applications"][0]["deployments"]
    total_cpus = sum(d["ray_actor_options"]["num_cpus"] for d in deployments)
    assert total_cpus <= 2.0, "one replica of each must fit on a 2-core node"
    ingress = next(d for d in deployments if d["name"] == "ingress")
    assert ingress["graceful_shutdown_timeout_s"] >= 600, "scale-down must not cut live calls"


def test_gpu_config_differs_only_in_the_slm() -> None:
    cpu, gpu = load(), yaml.safe_load(GPU_CONFIG.read_text())
    ServeDeploySchema.model_validate(gpu)
    (cpu_app,), (gpu_app,) = cpu["applications"], gpu["applications"]
    assert cpu_app["args"] == {"slm": "llama_cpp"} and gpu_app["args"] == {"slm": "vllm"}
    cpu_rest = [d for d in cpu_app["deployments"] if d["name"] != "slm"]
    gpu_rest = [d for d in gpu_app["deployments"] if d["name"] != "slm"]
    assert cpu_rest == gpu_rest
    strip = ("args", "deployments")
    assert {k: v for k, v in cpu_app.items() if k not in strip} == {
        k: v for k, v in gpu_app.items() if k not in strip
    }
    (gpu_slm,) = [d for d in gpu_app["deployments"] if d["name"] == "slm"]
    assert gpu_slm["ray_actor_options"]["num_gpus"] == 1


def test_vllm_batches_as_many_turns_as_serve_sends_a_replica() -> None:
    from app.settings import Settings

    (gpu_app,) = yaml.safe_load(GPU_CONFIG.read_text())["applications"]
    (gpu_slm,) = [d for d in gpu_app["deployments"] if d["name"] == "slm"]
    # Fewer, and turns would queue in vLLM; more, and start-up captures CUDA graphs for nothing.
    assert gpu_slm["max_ongoing_requests"] == Settings().models.slm_gpu_max_seqs


def test_the_builder_validates_its_arguments() -> None:
    import pydantic
    import pytest

    assert graph.AppArgs.model_validate({"slm": "vllm"}).slm == "vllm"
    with pytest.raises(pydantic.ValidationError):
        graph.AppArgs.model_validate({"slm": "tensorrt"})
    with pytest.raises(pydantic.ValidationError):
        graph.AppArgs.model_validate({"slm": "llama_cpp", "colour": "blue"})


@pytest.mark.parametrize("path", [CONFIG, GPU_CONFIG], ids=["cpu", "gpu"])
def test_the_app_knows_the_address_serve_listens_on(path: Path) -> None:
    """Serve binds 0.0.0.0; a replica left believing VELOX_HOST=127.0.0.1 would take unsigned
    voice traffic and answer unclaimed numbers with the demo agent on a public address."""
    from app.settings import Settings

    config = load(path)
    env = config["applications"][0]["runtime_env"]["env_vars"]
    assert env["VELOX_HOST"] == config["http_options"]["host"]
    settings = Settings(_env_file=None, velox_host=env["VELOX_HOST"])  # type: ignore[call-arg]
    assert not settings.server.on_loopback and not settings.demo_agent_enabled
