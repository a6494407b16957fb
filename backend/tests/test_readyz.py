"""/readyz as the proxy's public sees it (status only) and as the host sees it (every check);
its checks run on a connection of their own, at most once a second (src.readiness), so a
flood of /readyz starves no /v1 request."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from src.api.health import PUBLIC_HEADER
from src.app import create_app
from src.readiness import MAX_AGE_S
from tests.conftest import Database
from tests.support.docs_server import serving
from tests.support.net import closed_port

PUBLIC = {PUBLIC_HEADER: "1"}  # what docker/proxy/nginx.conf sets on every request


def unreachable(database: Database) -> str:
    return f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/{database.name}"


# ---- public: status only


def test_through_the_proxy_a_ready_backend_says_ready_only(
    seeded_database: Database, tmp_path: Path
) -> None:
    with TestClient(create_app(seeded_database.settings(tmp_path))) as client:
        response = client.get("/readyz", headers=PUBLIC)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_through_the_proxy_an_unready_backend_names_no_check(
    seeded_database: Database, tmp_path: Path
) -> None:
    settings = seeded_database.settings(tmp_path, url=unreachable(seeded_database))
    with TestClient(create_app(settings)) as client:
        public = client.get("/readyz", headers=PUBLIC)
        direct = client.get("/readyz")
    assert (public.status_code, public.json()) == (503, {"status": "unready"})
    assert "Connection refused" in direct.json()["checks"]["database"], direct.text


# ---- a result at most MAX_AGE_S old


def test_a_change_shows_within_a_second(seeded_database: Database, tmp_path: Path) -> None:
    marker = tmp_path / "unlocked"
    marker.touch()
    settings = seeded_database.settings(tmp_path, HF_CACHE_MARKER=marker.name)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        marker.unlink()  # as a locked model cache: the models check fails
        changed = time.monotonic()
        while client.get("/readyz").status_code == 200:
            assert time.monotonic() - changed < MAX_AGE_S + 1, "/readyz still says ready"
            time.sleep(0.02)
    assert time.monotonic() - changed < MAX_AGE_S + 0.5


# ---- a flood of /readyz while the database is slow


@contextmanager
def schema_locked(database: Database) -> Iterator[None]:
    """alembic_version locked, as a migration holds it: each schema check waits out its
    statement timeout (2 s) holding the connection it runs on."""
    conninfo = psycopg.conninfo.make_conninfo(
        host="127.0.0.1",
        port=database.cluster.port,
        user="app",
        password=database.cluster.app_password,
        dbname=database.name,
    )
    with psycopg.connect(conninfo) as connection:
        connection.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()


def waiting_on_the_lock(database: Database) -> int:
    """The app's sessions blocked by the lock, now."""
    rows = database.cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'nica-pro-backend' AND wait_event_type = 'Lock'",
        database.name,
    )
    return int(str(rows[0][0]))


def get(url: str, timeout: float = 15) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return status, time.monotonic() - started


def test_a_flood_of_readyz_starves_no_v1_request(seeded_database: Database, tmp_path: Path) -> None:
    environ = {
        "DATABASE_URL": seeded_database.url,
        "DATABASE_PASSWORD_FILE": str(seeded_database.password_file),
    }
    stop = threading.Event()

    def flood(base: str) -> None:
        while not stop.is_set():
            get(f"{base}/readyz")

    with serving(tmp_path, environ=environ, output=tmp_path / "server.log") as base:
        assert get(f"{base}/v1/collections")[0] == 200
        with schema_locked(seeded_database):
            flooders = [threading.Thread(target=flood, args=(base,)) for _ in range(60)]
            for thread in flooders:
                thread.start()
            try:
                time.sleep(1)  # the flood is on, and the first checks wait on the lock
                probes, blocked = [], []
                for _ in range(8):
                    probes.append(get(f"{base}/v1/collections"))
                    blocked.append(waiting_on_the_lock(seeded_database))
                    time.sleep(0.25)
            finally:
                stop.set()
                for thread in flooders:
                    thread.join(timeout=30)
    statuses = [status for status, _ in probes]
    slowest = max(seconds for _, seconds in probes)
    assert statuses == [200] * len(probes), f"/v1/collections during the flood: {statuses}"
    assert slowest < 1.0, f"/v1/collections took up to {slowest:.2f} s during the flood"
    assert max(blocked) <= 1, f"sessions of the app waiting on the lock: {blocked}"
