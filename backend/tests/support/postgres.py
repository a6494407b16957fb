"""A throwaway PostgreSQL cluster: initdb + pg_ctl in a temp dir, password auth, loopback only."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.net import free_port

PG_ROOT = Path("/usr/lib/postgresql")
APP_ROLE = "app"
STOP_ARGS = ("-m", "immediate", "-w", "stop")


def find_pg_bin() -> Path | None:
    """The bin/ folder of the newest PostgreSQL under /usr/lib/postgresql, if any."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path.parent.parent.name))

    candidates = [p.parent for p in PG_ROOT.glob("*/bin/initdb")]
    return max(candidates, key=lambda p: version(p / "initdb"), default=None)


@dataclass
class PostgresCluster:
    bin_dir: Path
    base_dir: Path
    port: int
    superuser_password: str
    app_password: str
    run_as: list[str]

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def _conninfo(self, dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.superuser_password,
            dbname=dbname,
        )

    def execute(self, statement: sql.SQL | sql.Composed, dbname: str = "postgres") -> None:
        with psycopg.connect(self._conninfo(dbname), autocommit=True) as connection:
            connection.execute(statement)

    def query(self, statement: str, dbname: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self._conninfo(dbname), autocommit=True) as connection:
            return list(connection.execute(statement).fetchall())

    def create_database(self, template: str = "template1") -> str:
        """A new database owned by the app role; template0 makes one without pgvector."""
        name = f"t_{secrets.token_hex(6)}"
        self.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE), sql.Identifier(template)
            )
        )
        return name

    def app_url(self, dbname: str, port: int | None = None) -> str:
        """A DATABASE_URL as the app takes it: no password in it."""
        return f"postgresql+psycopg://{APP_ROLE}@127.0.0.1:{port or self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        password_file = self.base_dir / "superuser-password"
        password_file.write_text(self.superuser_password + "\n")
        self._chown(password_file)
        password_file.chmod(0o600)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.base_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(self.app_password)
            )
        )
        # As an operator would: pgvector in every new database (the app role is no superuser,
        # so migration 0003 may not create it). Skipped where pgvector is not installed: then
        # 0003 fails, naming the package to install.
        if self.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'", "template1"):
            self.execute(sql.SQL("CREATE EXTENSION vector"), dbname="template1")

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *STOP_ARGS],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def _chown(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[PostgresCluster]:
    """Start a cluster (as the postgres user when running as root: initdb refuses root)."""
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise RuntimeError("running as root needs runuser to start PostgreSQL as postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    base_dir = Path(tempfile.mkdtemp(prefix="nica-pg-"))
    cluster = PostgresCluster(
        bin_dir=bin_dir,
        base_dir=base_dir,
        port=free_port(),
        superuser_password=secrets.token_urlsafe(16),
        app_password="app-pw-" + secrets.token_urlsafe(12),
        run_as=run_as,
    )
    try:
        cluster._chown(base_dir)
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
