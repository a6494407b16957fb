"""The fleet's one database, as the stories left it: the database host's PostgreSQL,
published on its fleet address only, shared by both backend hosts, none of which runs
or publishes a PostgreSQL of its own."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

import pytest
from fleet import ADDRESS, BACKENDS, CANARY, DATABASE, SECOND, search, store
from runs import sh


def reachable(host: Any, address: str, port: int = 5432) -> bool:
    """Whether a TCP connection from `host` to address:port succeeds."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=3).close()"
    return bool(host.run(f"python3 -c {shlex.quote(probe)}").rc == 0)


def test_a_document_stored_through_one_host_is_found_through_the_other(hosts):
    title = f"fleet-{uuid.uuid4().hex[:8]}"
    text = f"A document stored through {CANARY} about lighthouses and tides, marker {title}."
    status = store(hosts[CANARY], title, text)
    assert status == 201, f"storing through {CANARY} answered {status}"
    titles = search(hosts[SECOND], text, 3)
    assert title in titles, f"{SECOND} did not find the document stored through {CANARY}: {titles}"


@pytest.mark.parametrize("host", BACKENDS)
def test_no_postgres_runs_on_a_backend_host(hosts, host):
    names = sh(hosts[host], "docker ps -a --format '{{.Names}}'").split()
    assert "nica-postgres-1" not in names, f"{host} runs its own PostgreSQL: {names}"


def test_the_database_port_is_published_on_the_fleet_address_only(hosts):
    bindings = json.loads(
        sh(hosts[DATABASE], "docker inspect -f '{{json .HostConfig.PortBindings}}' nica-postgres-1")
    )
    assert bindings == {"5432/tcp": [{"HostIp": ADDRESS[DATABASE], "HostPort": "5432"}]}, bindings


def test_a_backend_host_reaches_the_database(hosts):
    assert reachable(hosts[CANARY], ADDRESS[DATABASE]), (
        f"{CANARY} cannot connect to {ADDRESS[DATABASE]}:5432"
    )


def test_the_database_port_is_closed_on_the_database_hosts_other_addresses(hosts):
    assert not reachable(hosts[DATABASE], "127.0.0.1"), (
        f"PostgreSQL answers on 127.0.0.1:5432 of {DATABASE}"
    )


@pytest.mark.parametrize("host", BACKENDS)
def test_the_backend_hosts_publish_no_database_port(hosts, host):
    assert not reachable(hosts[DATABASE], ADDRESS[host]), f"{host} answers on 5432"
