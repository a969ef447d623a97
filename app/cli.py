"""The `velox` command: serve on Ray, run in-process for development, place simulated calls."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from app.observability.logs import configure_logging
from app.settings import get_settings

cli = typer.Typer(add_completion=False, help="Velox: AI voice agents that answer phone calls.")
logger = logging.getLogger(__name__)


@cli.command()
def serve(
    port: Annotated[int | None, typer.Option(help="HTTP port (default VELOX_PORT or 8000)")] = None,
    dashboard: Annotated[bool, typer.Option(help="Start the Ray dashboard on :8265")] = True,
) -> None:
    """Start the Ray Serve application (graph.py) on this machine and wait."""
    configure_logging()
    settings = get_settings()
    port = port or settings.velox_port
    settings.velox_data_dir.mkdir(parents=True, exist_ok=True)
    from app.llm.model_files import qwen_gguf_path

    qwen_gguf_path(settings.velox_data_dir)  # assemble the model once, before replicas race for it
    import graph  # the composition root: the one place the CLI reaches up to the Serve app

    base = graph.run_local(host=settings.velox_host, port=port, dashboard=dashboard)
    typer.echo(f"\nVelox is up at {base}  (health: {base}/health, metrics: {base}/metrics)")
    if dashboard:
        typer.echo("Ray dashboard: http://127.0.0.1:8265")
    typer.echo(
        f"Place a test call:  .venv/bin/velox call --url {base} --say 'What are your hours?'"
    )
    typer.echo("Point a Twilio number's voice webhook at https://<public host>/voice/incoming.\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        graph.stop_local()


@cli.command()
def dev(
    port: Annotated[int | None, typer.Option(help="HTTP port (default VELOX_PORT or 8000)")] = None,
) -> None:
    """Run the same app in one process with in-process engines (no Ray)."""
    import uvicorn

    configure_logging()
    settings = get_settings()
    uvicorn.run(
        "app.devserver:create_dev_app",
        factory=True,
        host=settings.velox_host,
        port=port or settings.velox_port,
        log_level="info",
    )


@cli.command()
def call(
    url: Annotated[str, typer.Option(help="Velox server base URL")] = "http://127.0.0.1:8000",
    say: Annotated[
        list[str] | None, typer.Option(help="A caller line, spoken by local TTS")
    ] = None,
    wav: Annotated[list[Path] | None, typer.Option(help="A caller line from a WAV file")] = None,
    dtmf: Annotated[str | None, typer.Option(help="Digits to press after the greeting")] = None,
    to: Annotated[str, typer.Option(help="The number dialled")] = "+15550100",
    save: Annotated[Path, typer.Option(help="Folder for the call's audio and JSON")] = Path(
        "var/recordings"
    ),
    transcribe: Annotated[bool, typer.Option(help="Transcribe the agent's replies")] = True,
) -> None:
    """Place a simulated call exactly as Twilio would, and print both sides with latencies."""
    from app.simulator.script import run_scripted_call

    configure_logging(logging.WARNING)
    settings = get_settings()
    lines = list(say or [])
    if not lines and not wav and not dtmf:
        lines = ["Hi, what are your opening hours?", "Thanks, goodbye."]
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    report = asyncio.run(
        run_scripted_call(
            url,
            lines=lines,
            wavs=list(wav or []),
            dtmf=dtmf,
            to_number=to,
            auth_token=token,
            save_dir=save,
            transcribe=transcribe,
        )
    )
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"\nSaved audio and {report.json_path.name} in {report.json_path.parent}")
    if report.failed:
        raise typer.Exit(1)


@cli.command("bench-json")
def bench_json(path: Path) -> None:
    """Pretty-print a benchmark JSON file."""
    typer.echo(json.dumps(json.loads(path.read_text()), indent=2))


def main() -> None:
    """Console-script entry point."""
    cli()
