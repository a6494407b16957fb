"""roles/stack/templates/compose.env.j2 layers the remote database's compose file in
(no PostgreSQL on the host) from the inventory's shape, not from the wired URL:
rollback.yml and restore.yml do not wire a fleet's database URL, and a rollback that
rendered the one-host file on a fleet host tried to start PostgreSQL there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles" / "stack" / "templates" / "compose.env.j2"
LAYER = "COMPOSE_FILE=docker-compose.yml:docker-compose.remote-db.yml"

SLOT = {
    "release": "1.0.0-abc.12345678",
    "image": "nica-pro-backend:1.0.0-abc",
    "memory_limit": "2g",
    "cpus": "1.5",
}


def render(**variables: Any) -> str:
    """The template as Ansible's `template` renders it, with the role's values."""
    environment = jinja2.Environment(  # noqa: S701  # a .env file, not HTML
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    environment.filters["bool"] = lambda value: str(value).lower() in ("true", "1", "yes")
    values = {
        "ansible_managed": "Ansible managed",
        "backend_compose_project": "nica",
        "__backend_slots": ["blue", "green"],
        "stack_slots": {"blue": SLOT, "green": SLOT},
        "__backend_releases_dir": "/opt/nica/releases",
        "__backend_publish_host": "127.0.0.1",
        "backend_publish_port": 8000,
        **variables,
    }
    template = environment.from_string(TEMPLATE.read_text())
    # Every other name the template reads is a plain setting: give it its own name.
    names = jinja2.meta.find_undeclared_variables(environment.parse(TEMPLATE.read_text()))
    return template.render({name: name for name in names} | values)


@pytest.mark.parametrize(
    ("shape", "remote", "url"),
    [
        ("fleet, wired by deploy.yml", True, "postgresql+psycopg://app@10.0.0.20:5432/app"),
        ("fleet, in rollback.yml or restore.yml (not wired)", True, ""),
        ("external database", True, "postgresql+psycopg://app@db.example.internal:5432/app"),
    ],
)
def test_the_remote_database_layer_is_there_when_postgres_runs_elsewhere(
    shape: str, remote: bool, url: str
) -> None:
    text = render(__backend_remote_database=remote, backend_database_url=url)
    assert LAYER in text.splitlines(), f"{shape}: no {LAYER} in the compose .env"


def test_a_one_host_stack_has_no_remote_database_layer() -> None:
    text = render(__backend_remote_database=False, backend_database_url="")
    assert "COMPOSE_FILE" not in text, "a one-host stack's compose .env names another compose file"


@pytest.mark.parametrize(
    ("remote", "compose_file"),
    [
        (False, "COMPOSE_FILE=docker-compose.yml:docker-compose.tls.yml"),
        (
            True,
            "COMPOSE_FILE=docker-compose.yml:docker-compose.remote-db.yml:docker-compose.tls.yml",
        ),
    ],
    ids=["one host", "database elsewhere"],
)
def test_tls_layers_its_compose_file_in_and_names_its_port(remote: bool, compose_file: str) -> None:
    text = render(
        __backend_remote_database=remote,
        backend_database_url="",
        __backend_tls_enabled=True,
        backend_tls_publish_port=9443,
    ).splitlines()
    assert compose_file in text, f"no {compose_file} in the compose .env: {text}"
    assert "BACKEND_TLS_PUBLISH_PORT=9443" in text, "the TLS port is not in the compose .env"


def test_without_tls_the_env_names_no_tls_port() -> None:
    text = render(
        __backend_remote_database=False, backend_database_url="", __backend_tls_enabled=False
    )
    named = [line for line in text.splitlines() if "tls" in line.lower()]
    assert named == [], f"TLS off, yet the compose .env names it: {named}"
