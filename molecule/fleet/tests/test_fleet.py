"""The fleet after molecule/fleet's converge and side effect: two backend hosts sharing
the database host's PostgreSQL, rolled canary first, one image built once.

The checks run on the controller: HTTP to each backend host's published port on the
fleet's network, `docker exec` into the host containers (each runs its own engine), and
the logs and records side_effect.yml left in build/reports/fleet/.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCENARIO = REPO / "molecule" / "fleet"
REPORTS = REPO / "build" / "reports" / "fleet"
CANARY, SECOND, DATABASE = "nica-fleet-web-1", "nica-fleet-web-2", "nica-fleet-db"
ADDRESS = {CANARY: "10.99.83.11", SECOND: "10.99.83.12", DATABASE: "10.99.83.20"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def on(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv inside a fleet host container (its own engine answers `docker`)."""
    return subprocess.run(
        ["docker", "exec", container, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def record(host: str) -> dict[str, Any]:
    return json.loads(on(host, "cat", "/opt/nica/state/release.json").stdout)


def report(name: str) -> Any:
    return json.loads((REPORTS / name).read_text())


def log(name: str) -> str:
    return ANSI.sub("", (REPORTS / name).read_text())


def table(output: str) -> dict[str, tuple[str, str]]:
    """The ROLLOUT table at the end of a run: host -> (release, state)."""
    rows = output[output.rindex("ROLLOUT") :].splitlines()
    return {
        fields[0]: (fields[1], fields[2])
        for fields in (line.split(None, 2) for line in rows[1:])
        if len(fields) == 3 and fields[0].startswith("nica-fleet-")
    }


def results_by_host(output: str, task: str) -> dict[str, str]:
    """The -v result text of one task, per host, over every batch that ran it (a role's
    task is headed `TASK [role : name ...]`)."""
    results: dict[str, str] = {}
    for section in re.split(r"^TASK \[", output, flags=re.M)[1:]:
        if not re.match(rf"(?:\w+ : )?{re.escape(task)}", section):
            continue
        blocks = re.split(r"^(?:changed|ok|fatal): \[([^\]\s]+)[^\]]*\]", section, flags=re.M)
        results.update({blocks[i]: blocks[i + 1] for i in range(1, len(blocks) - 1, 2)})
    return results


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310  # http to the fleet
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # the fleet's own hosts
        return response.status, json.loads(response.read())


# --- the failed release: stopped on the canary -------------------------------------------


def test_a_release_that_fails_on_the_canary_fails_the_run():
    assert report("never-ready.json")["rc"] != 0, (
        "the deploy of a release that never becomes ready succeeded"
    )


def test_the_canary_keeps_serving_its_release_after_the_failure():
    runs = report("never-ready.json")
    before, after = runs["before"][CANARY], runs["after"][CANARY]
    assert after["release"] == before["release"], (
        f"the canary's record moved from {before['release']} to {after['release']}"
    )


def test_the_second_host_was_not_touched_by_the_failed_rollout():
    runs = report("never-ready.json")
    assert runs["after"][SECOND] == runs["before"][SECOND], (
        "the second host's record changed although the canary failed first"
    )


def test_the_final_table_names_the_canary_failed_and_the_second_host_not_reached():
    runs = report("never-ready.json")
    rows = table(log("never-ready.log"))
    assert rows.get(CANARY, ("", ""))[1].startswith("FAILED: "), (
        f"expected the canary FAILED, table: {rows}"
    )
    assert "did not become ready" in rows[CANARY][1], (
        f"expected the reason in the canary's row: {rows[CANARY]}"
    )
    assert rows.get(SECOND) == (runs["before"][SECOND]["release"], "not reached"), (
        f"expected {SECOND} not reached, on {runs['before'][SECOND]['release']}; table: {rows}"
    )


# --- the release with a migration: rolled across both -------------------------------------


def test_the_release_with_a_migration_rolled_out_on_both_hosts():
    assert report("migration.json")["rc"] == 0, (
        "the rollout of the release with migration 0004 failed"
    )
    rows = table(log("migration.log"))
    assert {host: state for host, (_, state) in rows.items()} == {
        CANARY: "rolled out",
        SECOND: "rolled out",
    }, rows


def test_the_canary_cut_over_before_the_second_host():
    after = report("migration.json")["after"]
    canary, second = after[CANARY], after[SECOND]
    assert canary["deployed_at"] < second["deployed_at"], (
        f"expected the canary first: {canary['deployed_at']} vs {second['deployed_at']}"
    )


def test_only_the_canary_ran_the_migrations():
    results = results_by_host(log("migration.log"), "Run migrations and the model prefetch")
    migrated = sorted(host for host, text in results.items() if "migrate-seed: applying" in text)
    prefetched = sorted(host for host, text in results.items() if "prefetch: fetching" in text)
    assert migrated == [CANARY], f"expected only {CANARY} to run migrate-seed, got {migrated}"
    assert prefetched == [CANARY, SECOND], f"expected the prefetch on both hosts, got {prefetched}"


def test_both_hosts_run_the_same_image_id():
    ids = {}
    for host in (CANARY, SECOND):
        container = f"nica-backend-{record(host)['slot']}-1"
        ids[host] = on(host, "docker", "inspect", "-f", "{{.Image}}", container).stdout.strip()
    assert ids[CANARY] and ids[CANARY] == ids[SECOND], (
        f"expected one image ID on both hosts, got {ids}"
    )


def test_the_second_host_built_no_image():
    usage = on(
        SECOND, "docker", "system", "df", "--format", "{{.Type}}={{.Size}}"
    ).stdout.splitlines()
    cache = dict(line.split("=", 1) for line in usage).get("Build Cache")
    assert cache == "0B", (
        f"expected no build cache on {SECOND} (the image is carried, not built), got {cache}"
    )


# --- the dry run, the hooks and the rollback ----------------------------------------------


def recaps(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {ok, changed, unreachable, failed, ...}."""
    rows = re.findall(r"^(nica-fleet-\S+)\s*:\s*(.+)$", output, flags=re.M)
    return {
        host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in rows
    }


def test_the_dry_run_of_the_next_release_runs_to_the_end_on_every_host():
    runs, output = report("dryrun.json"), log("dryrun.log")
    assert runs["rc"] == 0, (
        f"deploy.yml --check --diff on the fleet exited {runs['rc']}: {output[-3000:]}"
    )
    counts = recaps(output)
    assert sorted(counts) == sorted(ADDRESS) and all(c["failed"] == 0 for c in counts.values()), (
        counts
    )
    assert "would build nica-pro-backend:" in flat(output), "the dry run did not say it would build"


def test_the_dry_run_changed_nothing_on_any_host():
    runs = report("dryrun.json")
    changed = [host for host in runs["before"] if runs["after"][host] != runs["before"][host]]
    assert sorted(runs["before"]) == sorted(ADDRESS) and not changed, (
        f"deploy.yml --check --diff changed {changed}"
    )


def hook_calls(run: str) -> list[tuple[str, str, str]]:
    """(host, phase, release) of each hook call of one run, in order (hooks/record_call.yml)."""
    lines = (REPORTS / "hooks.log").read_text().splitlines()
    return [tuple(line.split()[1:4]) for line in lines if line.split()[0] == run]  # type: ignore[misc]


@pytest.mark.parametrize("run", ["deploy", "rollback"])
def test_the_hooks_took_each_host_out_and_back_in_batch_order(run):
    calls = [(host, phase) for host, phase, _ in hook_calls(run)]
    expected = [(CANARY, "pre"), (CANARY, "post"), (SECOND, "pre"), (SECOND, "post")]
    assert calls == expected, f"{run}: hook calls {calls}, expected {expected}"


def test_the_hooks_were_told_the_release_each_host_went_to():
    migrated, rolled_back = report("migration.json")["after"], report("rollback.json")["after"]
    for run, records in (("deploy", migrated), ("rollback", rolled_back)):
        told = sorted((host, phase, release) for host, phase, release in hook_calls(run))
        went = sorted(
            (host, phase, records[host]["release"])
            for host in (CANARY, SECOND)
            for phase in ("pre", "post")
        )
        assert told == went, f"{run}: the hooks were told {told}, the hosts went to {went}"


def test_the_rollback_brought_both_hosts_back_to_the_converged_release():
    runs, converged = report("rollback.json"), report("converged.json")
    assert runs["rc"] == 0, f"rollback.yml failed: {log('rollback.log')[-3000:]}"
    images = {host: runs["after"][host]["image"] for host in (CANARY, SECOND)}
    assert images == {host: converged["images"][host] for host in (CANARY, SECOND)}, images
    rows = table(log("rollback.log"))
    assert {host: state for host, (_, state) in rows.items()} == {
        CANARY: "rolled back",
        SECOND: "rolled back",
    }, rows


# --- how the image travelled: an archive at converge, the registry for the next release -----

REGISTRY = "10.99.83.20:5000"  # Debian's docker-registry on the database host (prepare.yml)
IMAGE_CACHE = REPO / "build" / "image-cache"  # backend_image_cache_dir's default


def archives_of(image: str) -> list[str]:
    """The controller's cached archives of `image`, any build of its tag
    (roles/release/tasks/ship_archive.yml names them
    <name>_<tag>-<arch>-<12 hex of the image ID>.tar)."""
    prefix = f"{image.replace('/', '_').replace(':', '_')}-x86_64-"
    return sorted(path.name for path in IMAGE_CACHE.glob(f"{prefix}*.tar"))


def test_the_converged_release_came_to_the_second_host_as_an_archive():
    converged = report("converged.json")
    ids, image = converged["ids"], converged["images"][CANARY]
    assert ids[CANARY] and ids[CANARY] == ids[SECOND], (
        f"one image ID expected after converge: {ids}"
    )
    assert converged["images"][SECOND] == image, converged["images"]
    expected = f"{image.replace('/', '_').replace(':', '_')}-x86_64-{ids[CANARY][7:19]}.tar"
    assert archives_of(image) == [expected], (
        f"expected the archive of the image the canary built ({expected}) in {IMAGE_CACHE},"
        f" alone of its tag: {archives_of(image)}"
    )


def test_the_next_release_came_to_the_second_host_through_the_registry():
    image = report("migration.json")["after"][CANARY]["image"]
    name, tag = image.rsplit(":", 1)
    login = yaml.safe_load((SCENARIO / "inventory" / "host_vars" / f"{SECOND}.yml").read_text())
    user, password = (
        login["backend_image_registry_username"],
        login["backend_image_registry_password"],
    )
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    url = f"http://{REGISTRY}/v2/{name}/tags/list"  # the fleet's own registry
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {basic}"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        tags = json.loads(answer.read())["tags"]
    assert tag in tags, f"{image} is not in the registry, which holds {name}: {tags}"
    digests = on(SECOND, "docker", "image", "inspect", "-f", "{{json .RepoDigests}}", image).stdout
    assert f"{REGISTRY}/{name}@sha256:" in digests, f"{SECOND} did not pull {image}: {digests}"
    assert not archives_of(image), f"{image} also went through the controller"


# --- one shared database -------------------------------------------------------------------


def test_a_document_stored_through_one_host_is_found_through_the_other():
    title = f"fleet-{uuid.uuid4().hex[:8]}"
    text = f"A document stored through {CANARY} about lighthouses and tides, marker {title}."
    status, _ = http(
        "POST", f"http://{ADDRESS[CANARY]}:8000/v1/documents", {"title": title, "text": text}
    )
    assert status == 201, f"storing through {CANARY} answered {status}"
    query = urllib.parse.urlencode({"q": text, "k": 3})
    status, body = http("GET", f"http://{ADDRESS[SECOND]}:8000/v1/search?{query}")
    titles = [hit["title"] for hit in body["data"]]
    assert title in titles, f"{SECOND} did not find the document stored through {CANARY}: {titles}"


@pytest.mark.parametrize("host", [CANARY, SECOND])
def test_no_postgres_runs_on_a_backend_host(host):
    names = on(host, "docker", "ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "nica-postgres-1" not in names, f"{host} runs its own PostgreSQL: {names}"


def test_the_database_port_is_published_on_the_fleet_address_only():
    inspect = on(
        DATABASE, "docker", "inspect", "-f", "{{json .HostConfig.PortBindings}}", "nica-postgres-1"
    )
    bindings = json.loads(inspect.stdout)
    assert bindings == {"5432/tcp": [{"HostIp": ADDRESS[DATABASE], "HostPort": "5432"}]}, bindings


def reachable(host: str, address: str) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, 5432), timeout=3).close()"
    return on(host, "python3", "-c", probe).returncode == 0


def test_a_backend_host_reaches_the_database():
    assert reachable(CANARY, ADDRESS[DATABASE]), (
        f"{CANARY} cannot connect to {ADDRESS[DATABASE]}:5432"
    )


@pytest.mark.parametrize("address", ["127.0.0.1"])
def test_the_database_port_is_closed_on_the_database_hosts_other_addresses(address):
    assert not reachable(DATABASE, address), f"PostgreSQL answers on {address}:5432 of {DATABASE}"


def test_the_backend_hosts_publish_no_database_port():
    for host in (CANARY, SECOND):
        with socket.socket() as probe:
            probe.settimeout(3)
            assert probe.connect_ex((ADDRESS[host], 5432)) != 0, f"{host} answers on 5432"


# --- the operator's playbooks on a fleet ---------------------------------------------------


def flat(text: str) -> str:
    """One line, runs of whitespace as one space (Ansible wraps long message lines)."""
    return " ".join(text.split())


def test_status_passes_and_reports_the_database_host():
    assert report("operations.json")["status_rc"] == 0, "status.yml failed on a healthy fleet"
    reports = results_by_host(log("status.log"), "Report the database host's status")
    text = flat(reports.get(DATABASE, ""))
    assert "postgres: running/healthy" in text, (
        f"no healthy PostgreSQL in {DATABASE}'s report: {text}"
    )
    assert "accepting connections" in text, f"pg_isready's answer missing: {text}"


def test_status_on_a_backend_host_points_to_the_database_host():
    reports = results_by_host(log("status.log"), "Report the status")
    for host in (CANARY, SECOND):
        text = flat(reports.get(host, ""))
        containers = text.split("containers:", 1)[-1].split("backups:", 1)[0]
        assert "backend-" in containers and "postgres" not in containers, (
            f"{host}'s containers should be its slots and proxy only: {containers}"
        )
        assert f"backups: on {DATABASE}" in text, f"{host}'s report: {text}"


def test_backup_dumps_the_shared_database_on_the_database_host():
    runs = report("operations.json")
    assert runs["backup_rc"] == 0, (
        "backup.yml failed on the fleet, see build/reports/fleet/backup.log"
    )
    new = sorted(set(runs["backups_after"]) - set(runs["backups_before"]))
    assert len(new) == 1 and new[0].endswith("-manual.dump"), (
        f"expected one new manual dump on {DATABASE}, got {new}"
    )


def fingerprints(name: str) -> dict[str, str]:
    """Each host's fingerprint (side_effect.yml's __fingerprint) from a restore-*.after file."""
    sections = re.split(r"^== (\S+)$", (REPORTS / name).read_text(), flags=re.M)
    return {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}


def serving_started_at(fingerprint: str, host: str) -> str:
    """`<status> <started at>` of the container of the slot `host` records as serving."""
    container = f"/nica-backend-{record(host)['slot']}-1 "
    line = next(line for line in fingerprint.splitlines() if line.startswith(container))
    return " ".join(line.split()[2:4])


def test_restore_of_a_missing_backup_stops_before_anything_changes():
    assert report("operations.json")["restore_rc"]["missing"] != 0, (
        "restore.yml of missing.dump succeeded"
    )
    text = flat(log("restore-missing.log"))
    assert f"No backup missing.dump in /opt/nica/backups on {DATABASE}; there are:" in text, text[
        -2000:
    ]
    assert fingerprints("restore-missing.after") == fingerprints("restore-before.after"), (
        "a refused restore changed a host of the fleet"
    )


def test_restore_with_a_backend_host_left_out_restores_nothing_and_serves_again():
    assert report("operations.json")["restore_rc"]["limited"] != 0, (
        "restore.yml ran with a backend host that may still serve"
    )
    text = flat(log("restore-limited.log"))
    assert f"Nothing restored: {SECOND}: not in this run" in text, text[-2000:]
    before, after = fingerprints("restore-before.after"), fingerprints("restore-limited.after")
    assert after[SECOND] == before[SECOND] and after[DATABASE] == before[DATABASE], (
        "the refused restore touched the host left out or the database host"
    )
    started = serving_started_at(after[CANARY], CANARY)
    assert started.startswith("running ") and started != serving_started_at(
        before[CANARY], CANARY
    ), f"{CANARY} should have stopped and served again, its serving container: {started}"


def test_restore_stops_every_backend_host_restores_then_serves_again():
    assert report("operations.json")["restore_rc"]["done"] == 0, (
        "restore.yml failed on the fleet, see build/reports/fleet/restore-done.log"
    )
    before, after = fingerprints("restore-before.after"), fingerprints("restore-done.after")
    for host in (CANARY, SECOND):
        was, now = serving_started_at(before[host], host), serving_started_at(after[host], host)
        assert now.startswith("running ") and now != was, (
            f"{host}'s serving container should have stopped and started again: {was} -> {now}"
        )
        status, body = http("GET", f"http://{ADDRESS[host]}:8000/readyz")
        assert status == 200, f"{host} is not ready after the restore: {body}"


def test_restore_put_the_database_back_to_the_backup():
    runs = report("operations.json")
    assert runs["after_backup"] in runs["found_before_restore"], (
        f"the document stored after the backup was not found before the restore: {runs}"
    )
    query = urllib.parse.urlencode({"q": "harbour cranes written after the fleet's backup", "k": 5})
    _, body = http("GET", f"http://{ADDRESS[SECOND]}:8000/v1/search?{query}")
    titles = [hit["title"] for hit in body["data"]]
    assert runs["after_backup"] not in titles, (
        f"the document stored after the backup is still there after the restore: {titles}"
    )
    backups = on(DATABASE, "ls", "/opt/nica/backups").stdout.split()
    assert any(name.endswith("-before-restore.dump") for name in backups), (
        f"no backup of the database as it was before the restore on {DATABASE}: {backups}"
    )


@pytest.mark.parametrize("host", [CANARY, SECOND, DATABASE])
def test_restore_is_in_every_hosts_audit_log(host):
    lines = on(host, "cat", "/opt/nica/state/audit.jsonl").stdout.splitlines()
    last = json.loads(lines[-1]) if lines else {}
    assert (last.get("action"), last.get("result")) == ("restore", "ok"), (
        f"{host}'s last audit entry should be the restore, ok: {last}"
    )
