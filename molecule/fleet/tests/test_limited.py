"""`deploy.yml --limit <one backend host>` on a fleet (issue 21, item 8): the database play
is left out, so the host reads the database's address and password on the database host
(roles/database tasks_from link, playbooks/tasks/wire_database.yml). A setting for that
host alone rolls out there, blue/green, and nothing else changes: not the other backend
host, not the database host. The release it serves then works against the shared
database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fleet import CANARY, DATABASE, FLEET, SECOND, fingerprints, search, store
from runs import Run, deploy, inspect, ready_status, record, serving, sh

MARK = {"backend_extra_env": {"NICA_FLEET_MARK": "limited"}}
LINK_TASK = "database : Read the note of where the database is published"


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any]) -> dict[str, Any]:
    before, record_before = fingerprints(hosts), record(hosts[SECOND])
    run = deploy("limited", "--limit", SECOND, "-e", json.dumps(MARK))
    done: dict[str, Any] = {
        "run": run,
        "before": before,
        "after": fingerprints(hosts),
        "record_before": record_before,
        "record_after": record(hosts[SECOND]),
        "env": inspect(hosts[SECOND], serving(hosts[SECOND])).get("Config", {}).get("Env", []),
        "ready": ready_status(hosts[SECOND]),
        "build-cache": sh(hosts[SECOND], "docker system df --format '{{.Type}}={{.Size}}'"),
    }
    title = f"fleet-limited-{uuid.uuid4().hex[:8]}"
    text = f"A note about tide tables stored through the limited host's release, marker {title}."
    done["stored"] = store(hosts[SECOND], title, text)
    done["title"], done["found"] = title, search(hosts[CANARY], text, 3)
    return done


def test_a_limited_deploy_of_one_backend_host_succeeds(story):
    run: Run = story["run"]
    assert run.rc == 0, f"deploy.yml --limit {SECOND} failed on the fleet: {run}"
    assert sorted(run.recaps()) == [SECOND], f"other hosts ran: {run.recaps()}"
    release, state = run.table().get(SECOND, ("", ""))
    assert (release, state) == (story["record_after"]["release"], "rolled out"), run.table()


def test_the_limited_run_read_the_database_link_on_the_database_host(story):
    run: Run = story["run"]
    assert run.ran(LINK_TASK), f"the run did not read how to reach {DATABASE} there: {run}"


def test_the_limited_host_rolled_out_its_setting_blue_green(story):
    before, after = story["record_before"], story["record_after"]
    assert after["release"] != before["release"], "the changed setting made no new release"
    assert after["slot"] != before["slot"], f"the new release should run in the idle slot: {after}"
    names = [entry.split("=", 1)[0] for entry in story["env"]]
    assert "NICA_FLEET_MARK" in names, f"{SECOND} serves without its new setting: {names}"


def test_the_limited_host_built_no_image(story):
    # The setting changed, not the code: the image the fleet's canary built is reused.
    cache = dict(line.split("=", 1) for line in story["build-cache"].splitlines()).get(
        "Build Cache"
    )
    assert cache == "0B", f"{SECOND} built an image for a setting change: build cache {cache}"


@pytest.mark.parametrize("host", [h for h in FLEET if h != SECOND])
def test_the_limited_deploy_changed_no_other_host(story, host):
    assert story["before"][host], f"no fingerprint of {host}"
    assert story["after"][host] == story["before"][host], (
        f"deploy.yml --limit {SECOND} changed {host}"
    )


def test_the_limited_hosts_release_serves_from_the_shared_database(story):
    assert story["ready"] == 200, f"{SECOND} is not ready after the limited deploy"
    assert story["stored"] == 201, f"storing through {SECOND} answered {story['stored']}"
    assert story["title"] in story["found"], (
        f"{CANARY} did not find the document stored through {SECOND}: {story['found']}"
    )
