"""Least privilege in the database (roles/database, tasks_from: roles; files/roles.sql):
the serving slots connect as the runtime role, which can read and write the app's rows and
nothing else; the owner role owns the schema and runs the migrations; the superuser's
password is in no backend container.

The story first: a host deployed before these roles existed (every table the superuser's,
no owner or runtime role, the serving slot connected as the superuser with its password)
moves to them on its next deploy (a new release: a configuration change) under a steady
client: no request fails, no document is lost, and the slot that serves afterwards is the
runtime role's. The host is brought back to that state from the converged one: the serving
slot recreated with the superuser as its user and password (before the client starts), the
roles and their password files removed, ownership given back to the superuser. The checks
after it look at the host as it is (as that upgrade left it, when the module runs whole)."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

import pytest
from conftest import APP_UID, SECRETS_DIR, sha256
from runs import (
    DEPLOY,
    INSUFFICIENT_PRIVILEGE,
    ansible_playbook,
    as_the_slot,
    record,
    sh,
    steady_client,
)

SUPERUSER, OWNER, RUNTIME = "app", "app_owner", "app_runtime"
PSQL = (
    "docker exec -i nica-postgres-1"
    " psql -X -q -h /var/run/postgresql -U app -d app -At -v ON_ERROR_STOP=1"
    f" -v owner={OWNER} -v runtime={RUNTIME} -f -"
)
# A new release each time (a host deployed by an earlier run of this module has served one).
MARK = {"backend_extra_env": {"NICA_ROLES_MARK": uuid.uuid4().hex[:8]}}
# What a host deployed before the roles had: the superuser owning everything, PUBLIC's
# default rights on the database and the schema (PostgreSQL 17's), no owner or runtime role.
BACK_TO_BEFORE_THE_ROLES = """
SELECT count(*) = 2 AS have_roles FROM pg_roles WHERE rolname IN (:'owner', :'runtime') \\gset
\\if :have_roles
REASSIGN OWNED BY :"owner" TO CURRENT_USER;
DROP OWNED BY :"owner";
DROP OWNED BY :"runtime";
DROP ROLE :"owner", :"runtime";
ALTER SCHEMA public OWNER TO pg_database_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE app TO PUBLIC;
\\endif
"""


def psql(host: Any, sql: str) -> str:
    """SQL as the superuser, on psql's stdin: :'owner' and :'runtime' name the roles."""
    return sh(host, f"printf '%s\\n' {shlex.quote(sql)} | {PSQL}").strip()


def slot_users(host: Any) -> list[str]:
    """The roles connected over the network: the backend slots (psql here uses the socket)."""
    return psql(
        host,
        "SELECT DISTINCT usename FROM pg_stat_activity"
        " WHERE datname = current_database() AND client_addr IS NOT NULL ORDER BY 1",
    ).split()


def document_ids(host: Any) -> list[int]:
    return [int(line) for line in psql(host, "SELECT id FROM documents ORDER BY id").split()]


def back_to_before_the_roles(host: Any) -> None:
    """The converged host as a deploy from before the roles left it (see the docstring)."""
    slot, release = record(host)["slot"], record(host)["release"]
    sh(
        host,
        "set -e; cd /opt/nica; "
        f"sed -i 's#^DATABASE_URL=postgresql+psycopg://{RUNTIME}@#DATABASE_URL=postgresql+psycopg://{SUPERUSER}@#'"
        f" releases/{release}/stack.env; "
        f"install -o {APP_UID} -g {APP_UID} -m 0400 {SECRETS_DIR}/postgres_password"
        f" {SECRETS_DIR}/database_password; "
        f"rm -f {SECRETS_DIR}/database_owner_password {SECRETS_DIR}/database_runtime_password; "
        "cd compose; docker compose up --detach --no-deps --force-recreate"
        f" --wait --wait-timeout 180 backend-{slot} 2>&1",
    )
    psql(host, BACK_TO_BEFORE_THE_ROLES)


@pytest.fixture(scope="module")
def upgrade(host: Any) -> dict[str, Any]:
    back_to_before_the_roles(host)
    before = {
        "slot_users": slot_users(host),
        "roles": psql(
            host, "SELECT count(*) FROM pg_roles WHERE rolname IN (:'owner', :'runtime')"
        ),
        "owners": psql(
            host,
            "SELECT DISTINCT relowner::regrole FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
        ),
        "documents": document_ids(host),
        "release": record(host)["release"],
    }
    with steady_client(host, "database-roles") as client:
        run = ansible_playbook("database-roles-upgrade", "-e", json.dumps(MARK), DEPLOY)
    return {
        "before": before,
        "run": run,
        "client": client,
        "documents": document_ids(host),
        "release": record(host)["release"],
    }


def test_the_host_starts_from_before_the_roles(upgrade):
    assert upgrade["before"]["slot_users"] == [SUPERUSER], upgrade["before"]
    assert upgrade["before"]["roles"] == "0", upgrade["before"]
    assert upgrade["before"]["owners"] == SUPERUSER, upgrade["before"]
    assert upgrade["before"]["documents"], "no document stored before the upgrade"


def test_the_upgrade_deploy_succeeds(upgrade):
    run = upgrade["run"]
    assert run.rc == 0, f"the deploy onto the roles failed:\n{run.tail()}"
    assert run.recap()["failed"] == 0, run
    assert upgrade["release"] != upgrade["before"]["release"], (
        f"no new release was rolled out: {upgrade['release']} served before and after"
    )


def test_the_upgrade_fails_no_request(upgrade):
    client = upgrade["client"]
    assert client["sent"] > 0 and client["failed"] == 0, f"steady client: {client}"


def test_the_upgrade_keeps_every_document(upgrade):
    lost = sorted(set(upgrade["before"]["documents"]) - set(upgrade["documents"]))
    assert not lost, f"documents lost in the upgrade: {lost}"


def test_the_slots_connect_as_the_runtime_role(host):
    assert slot_users(host) == [RUNTIME], (
        "the backend slots' connections are not all the runtime role's"
    )


def test_the_runtime_role_is_no_superuser_and_in_no_server_role(host):
    row = psql(
        host,
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,"
        " pg_has_role(:'runtime', 'pg_execute_server_program', 'MEMBER'),"
        " pg_has_role(:'runtime', 'pg_read_server_files', 'MEMBER'),"
        " pg_has_role(:'runtime', 'pg_write_server_files', 'MEMBER'),"
        " has_schema_privilege(:'runtime', 'public', 'CREATE'),"
        " has_database_privilege(:'runtime', current_database(), 'CREATE, TEMPORARY')"
        " FROM pg_roles WHERE rolname = :'runtime'",
    )
    assert row == "|".join(["f"] * 9), f"{RUNTIME} has more than row access: {row}"


@pytest.mark.parametrize(
    "statement",
    ["CREATE TABLE nica_probe (id int)", "COPY (SELECT 1) TO PROGRAM 'true'"],
    ids=["create-table", "copy-to-program"],
)
def test_the_serving_slot_cannot(host, statement):
    container = f"nica-backend-{record(host)['slot']}-1"
    user, outcome = as_the_slot(host, container, statement)
    assert user == RUNTIME, f"{container} connects as {user}, not {RUNTIME}"
    assert outcome == INSUFFICIENT_PRIVILEGE, (
        f"{statement!r} as {user} in {container}: {outcome}, expected permission denied"
    )


def test_the_owner_owns_the_schema_and_every_table(host):
    owners = psql(
        host,
        "SELECT DISTINCT relowner::regrole FROM pg_class c"
        " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v', 'm')"
        " AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
        " UNION SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'",
    ).split()
    assert owners == [OWNER], f"the app's schema and tables are owned by {owners}"


def test_a_table_the_owner_creates_later_is_the_runtime_roles_too(host):
    # In one transaction, rolled back: a later migration's table, then the slots' rights on it.
    out = psql(
        host,
        'BEGIN; SET LOCAL ROLE :"owner";'
        " CREATE TABLE nica_probe (id bigint GENERATED ALWAYS AS IDENTITY, note text);"
        " SET LOCAL ROLE :\"runtime\"; INSERT INTO nica_probe (note) VALUES ('x');"
        " UPDATE nica_probe SET note = 'y'; SELECT count(*) FROM nica_probe; ROLLBACK;",
    )
    assert out == "1", f"the runtime role could not use a table the owner created: {out}"


def test_no_backend_container_holds_the_superuser_password(host):
    superuser = sha256(host.file(f"{SECRETS_DIR}/postgres_password").content_string)
    containers = sh(host, "docker ps --format '{{.Names}}' --filter name=nica-backend-").split()
    assert containers, "no backend slot runs"
    for container in containers:
        mounts = json.loads(sh(host, f"docker inspect -f '{{{{json .Mounts}}}}' {container}"))
        sources = [mount["Source"] for mount in mounts]
        assert not [s for s in sources if s.endswith("postgres_password")], (
            f"{container} mounts the superuser's password file: {sources}"
        )
        inside = sh(host, f"docker exec {container} cat /run/secrets/database_password")
        assert sha256(inside) != superuser, f"{container} holds the superuser's password"


def test_each_role_has_its_own_password_file(host):
    digests = {}
    for name, uid in (
        ("postgres_password", None),
        ("database_owner_password", APP_UID),
        ("database_runtime_password", 0),
        ("database_password", APP_UID),
    ):
        secret = host.file(f"{SECRETS_DIR}/{name}")
        assert secret.exists and secret.mode == 0o400, f"{name}: missing or not 0400"
        assert uid is None or secret.uid == uid, f"{name} owner is {secret.uid}, expected {uid}"
        digests[name] = secret.sha256sum
    assert digests["database_password"] == digests["database_runtime_password"], (
        "the slots' database_password is not the runtime role's"
    )
    assert len({digests[n] for n in digests if n != "database_password"}) == 3, (
        "two roles share a password"
    )
