"""The relabelling of Ray's metrics page into the velox_* contract (no Ray needed)."""
# ruff: noqa: E501  (real lines of a Ray metrics page are long)

from app.observability.ray_metrics import relabel

PAGE = """# HELP ray_velox_calls_total Calls by final status.
# TYPE ray_velox_calls_total counter
ray_velox_calls_total{Component="core_worker",NodeAddress="192.0.2.2",SessionName="s1",Version="2.60.0",WorkerId="49e2",application="velox",deployment="ingress",otel_scope_name="ray._private",otel_scope_schema_url="",replica="exrha17b",status="failed"} 2.0
ray_velox_e2e_latency_seconds_bucket{Component="core_worker",WorkerId="49e2",deployment="ingress",le="0.5",replica="exrha17b"} 3.0
# HELP ray_tasks Current number of tasks.
ray_tasks{State="RUNNING"} 4.0
ray_velox_active_calls{replica="a",deployment="ingress"} 1.0
"""


def test_keeps_velox_series_renamed_with_lean_labels() -> None:
    text = relabel(PAGE)
    assert "# TYPE velox_calls_total counter" in text
    assert (
        'velox_calls_total{application="velox",deployment="ingress",replica="exrha17b",'
        'status="failed"} 2.0' in text
    )
    assert (
        'velox_e2e_latency_seconds_bucket{deployment="ingress",le="0.5",replica="exrha17b"} 3.0'
        in text
    )
    assert 'velox_active_calls{replica="a",deployment="ingress"} 1.0' in text
    assert "ray_tasks" not in text and "WorkerId" not in text and "otel_" not in text


def test_escapes_survive_and_two_nodes_share_one_description() -> None:
    node = (
        "# HELP ray_velox_calls_total Calls by\\nfinal status.\n"
        "# TYPE ray_velox_calls_total counter\n"
        'ray_velox_calls_total{WorkerId="1",replica="r1",status="we\\"ird\\\\x"} 1.0\n'
    )
    text = relabel(node + node.replace("r1", "r2"))
    assert text.splitlines() == [
        "# HELP velox_calls_total Calls by\\nfinal status.",
        "# TYPE velox_calls_total counter",
        'velox_calls_total{replica="r1",status="we\\"ird\\\\x"} 1.0',
        'velox_calls_total{replica="r2",status="we\\"ird\\\\x"} 1.0',
    ]
