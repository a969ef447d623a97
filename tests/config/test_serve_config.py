"""serve_config.yaml validated with Ray's own schema; autoscaling keys checked strictly."""

from pathlib import Path

import yaml
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

import graph

CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_serve_config_matches_rays_schema() -> None:
    ServeDeploySchema.model_validate(load()) if hasattr(
        ServeDeploySchema, "model_validate"
    ) else ServeDeploySchema.parse_obj(load())


def test_autoscaling_keys_are_real() -> None:
    # Serve silently ignores misspelled autoscaling keys (design.md), so check them ourselves.
    known = (
        set(AutoscalingConfig.model_fields)
        if hasattr(AutoscalingConfig, "model_fields")
        else set(AutoscalingConfig.__fields__)
    )
    for deployment in load()["applications"][0]["deployments"]:
        unknown = set(deployment.get("autoscaling_config", {})) - known
        assert not unknown, f"{deployment['name']}: unknown autoscaling keys {unknown}"


def test_every_deployment_in_the_graph_is_configured_and_fits_two_cores() -> None:
    deployments = load()["applications"][0]["deployments"]
    names = {d["name"] for d in deployments}
    assert names == {"ingress", "stt", "slm", "tts", "embedder"}
    assert graph.app is not None
    total_cpus = sum(d["ray_actor_options"]["num_cpus"] for d in deployments)
    assert total_cpus <= 2.0, "one replica of each must fit on a 2-core node"
    ingress = next(d for d in deployments if d["name"] == "ingress")
    assert ingress["graceful_shutdown_timeout_s"] >= 600, "scale-down must not cut live calls"


GPU_CONFIG = CONFIG.with_name("serve_config.gpu.yaml")


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
    assert gpu_slm["max_ongoing_requests"] == Settings().slm_gpu_max_seqs


def test_the_builder_validates_its_arguments() -> None:
    import pydantic
    import pytest

    assert graph.AppArgs.model_validate({"slm": "vllm"}).slm == "vllm"
    with pytest.raises(pydantic.ValidationError):
        graph.AppArgs.model_validate({"slm": "tensorrt"})
    with pytest.raises(pydantic.ValidationError):
        graph.AppArgs.model_validate({"slm": "llama_cpp", "colour": "blue"})
