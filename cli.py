"""The `velox` command: serve on Ray, run in-process for development, place simulated calls."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.observability.logs import configure_logging
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from app.db.numbers import Assignment

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
    port = port or settings.server.velox_port
    settings.server.velox_data_dir.mkdir(parents=True, exist_ok=True)
    from app.llm.model_files import slm_model_path
    from app.rag.minilm_model import int8_model

    # Assemble the SLM and build the embedder's model once, before replicas race for them.
    slm_model_path(settings.models.slm_model_path, settings.server.velox_data_dir)
    int8_model(settings.server.velox_data_dir / "models")
    # SIGTERM unwinds like Ctrl-C, so the cleanup below runs (set again once Ray, which installs
    # its own handler in ray.init, is up).
    signal.signal(signal.SIGTERM, _interrupt)
    stop_db = _prepare_database(settings)
    import launch

    try:
        base = launch.run_local(host=settings.server.velox_host, port=port, dashboard=dashboard)
        signal.signal(signal.SIGTERM, _interrupt)
        typer.echo(f"\nVelox is up at {base}  (health: {base}/health, metrics: {base}/metrics)")
        if dashboard:
            typer.echo("Ray dashboard: http://127.0.0.1:8265")
        typer.echo(
            f"Place a test call:  .venv/bin/velox call --url {base} --say 'What are your hours?'"
        )
        typer.echo(
            "Point a Twilio number's voice webhook at https://<public host>/voice/incoming.\n"
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        launch.stop_local()
        stop_db()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


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
        host=settings.server.velox_host,
        port=port or settings.server.velox_port,
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
    patience: Annotated[
        float, typer.Option(help="Seconds of agent silence before the caller goes on")
    ] = 2.5,
) -> None:
    """Place a simulated call exactly as Twilio would, and print both sides with latencies."""
    from harness.simulator.script import run_scripted_call

    configure_logging(logging.WARNING)
    settings = get_settings()
    lines = list(say or [])
    if not lines and not wav and not dtmf:
        lines = ["Hi, what are your opening hours?", "Thanks, goodbye."]
    token = (
        settings.telephony.twilio_auth_token.get_secret_value()
        if settings.telephony.twilio_auth_token
        else None
    )
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
            patience_s=patience,
        )
    )
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"\nSaved audio and {report.json_path.name} in {report.json_path.parent}")
    if report.failed:
        raise typer.Exit(1)


@cli.command("demo-backend")
def demo_backend(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8100,
    api_key: Annotated[
        str | None, typer.Option(help="Require this bearer key on every request")
    ] = None,
) -> None:
    """Serve an example business API (orders, stock, calendar, customers, handoffs) for tools."""
    import uvicorn

    from harness.demo_backend import create_demo_backend

    configure_logging()
    base = f"http://{host}:{port}"
    typer.echo("Point Velox's tools at it (all share this one URL), e.g. in .env:")
    for prefix in ("ORDER", "INVENTORY", "CALENDAR", "CRM", "HANDOFF"):
        typer.echo(f"  {prefix}_API_URL={base}")
        if api_key:
            typer.echo(f"  {prefix}_API_KEY={api_key}")
    auth = f"-H 'Authorization: Bearer {api_key}' " if api_key else ""
    typer.echo(f"Try it:  curl {auth}{base}/orders/A1042\n")
    uvicorn.run(create_demo_backend(api_key=api_key), host=host, port=port, log_level="info")


org_cli = typer.Typer(help="Organizations (tenants).")
db_cli = typer.Typer(help="The database schema.")
numbers_cli = typer.Typer(help="Phone numbers: which organization and agent answer each.")
cli.add_typer(org_cli, name="org")
cli.add_typer(db_cli, name="db")
cli.add_typer(numbers_cli, name="numbers")


@org_cli.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organization's name")],
    key_name: Annotated[str, typer.Option(help="A label for its first API key")] = "first key",
) -> None:
    """Create an organization and print its first API key (shown once)."""
    from app.db.organizations import create_org_with_key

    configure_logging(logging.WARNING)
    settings = get_settings()
    stop_db = _prepare_database(settings)
    try:
        org_id, key = asyncio.run(create_org_with_key(settings, name, key_name))
    finally:
        stop_db()
    typer.echo(f"Organization {name!r}: {org_id}")
    typer.echo(f"API key (store it now, it is not shown again): {key}")
    typer.echo(f"Try it:  curl -H 'Authorization: Bearer {key}' http://127.0.0.1:8000/api/agents")


@numbers_cli.command("assign")
def numbers_assign(
    number: Annotated[str, typer.Argument(help="The number, E.164 (+14155550100)")],
    org: Annotated[str, typer.Option(help="The organization's id (from `velox org create`)")],
    agent: Annotated[
        str | None, typer.Option(help="The id of the organization's agent that answers it")
    ] = None,
) -> None:
    """Assign a number to an organization directly in the database (the operator's way when
    the server cannot ask Twilio whose a number is)."""
    from app.db.numbers import AssignError

    try:
        org_id = uuid.UUID(org)
        agent_id = uuid.UUID(agent) if agent else None
    except ValueError as exc:
        raise typer.BadParameter("--org and --agent take ids like 3f2b…-…") from exc
    configure_logging(logging.WARNING)
    settings = get_settings()
    stop_db = _prepare_database(settings)
    try:
        done = asyncio.run(_assign(settings, number, org_id, agent_id))
    except AssignError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        stop_db()
    verb = "assigned to" if done.created else "already with"
    answered = f", answered by agent {done.agent_id}" if done.agent_id else ", no agent yet"
    typer.echo(f"{done.number} {verb} organization {done.org_id}{answered} (id {done.number_id})")


async def _assign(
    settings: Settings, number: str, org_id: uuid.UUID, agent_id: uuid.UUID | None
) -> Assignment:
    from app.db.database import Database
    from app.db.numbers import assign_number
    from app.db.setup import database_url

    db = Database(database_url(settings), pool_size=1)
    try:
        return await assign_number(db, number, org_id, agent_id)
    finally:
        await db.close()


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    from app.db import migrate

    migrate.upgrade(_database_url(), revision)
    typer.echo(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Migrate the schema down to REVISION ('base' drops every table)."""
    from app.db import migrate

    migrate.downgrade(_database_url(), revision)
    typer.echo(f"database at {revision}")


def _database_url() -> str:
    from app.db.setup import database_url

    return database_url(get_settings())


def _prepare_database(settings: Settings) -> Callable[[], None]:
    """Start the embedded Postgres if needed, migrate, and hand its URL to child processes.

    Returns what to call on the way out: it stops the embedded server if this process started
    it, and leaves alone one that another `velox` process runs.
    """
    import os

    from app.db import migrate
    from app.db.embedded import embedded_postgres_running, stop_embedded_postgres
    from app.db.setup import database_url

    pgdata = settings.server.velox_data_dir / "postgres"
    started_here = not settings.database.database_url and not embedded_postgres_running(pgdata)
    url = database_url(settings)
    migrate.upgrade(url)
    # Ray replicas inherit the environment: they join this server instead of looking for one.
    os.environ["DATABASE_URL"] = url
    if not settings.database.database_url:
        typer.echo(f"Embedded Postgres (pgvector) in {pgdata}")
    return (lambda: stop_embedded_postgres(pgdata)) if started_here else (lambda: None)


@cli.command("bench-json")
def bench_json(path: Path) -> None:
    """Pretty-print a benchmark JSON file."""
    typer.echo(json.dumps(json.loads(path.read_text()), indent=2))


def main() -> None:
    """Console-script entry point."""
    cli()
