"""A release rolled across the fleet and back:
1. the next release (testing/next_release/0004, a backward compatible migration), with -v
   and a pre/post hook (hooks/record_call.yml, where a load balancer's drain call would
   go), through the database host's registry (backend_image_registry): both hosts roll,
   the canary first; only the canary migrates, both prefetch; the image is built once, on
   the canary, and pulled by the second host;
2. playbooks/rollback.yml with the same hooks: both hosts back to the converged release,
   in the same batches; that release had come to the second host as an archive through
   the controller (converge: no registry)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from fleet import BACKENDS, CANARY, IMAGE_CACHE, REGISTRY, SECOND, hook_args
from runs import (
    REPORTS,
    SCENARIO,
    Run,
    ansible_playbook,
    deploy,
    http,
    inspect,
    playbook,
    record,
    serving,
    sh,
)


def hook_calls(path: Any, run: str) -> list[tuple[str, str, str]]:
    """(host, phase, release) of each hook call of one run, in order."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(f[1], f[2], f[3]) for f in (line.split() for line in lines) if f[0] == run]


def serving_image_ids(hosts: dict[str, Any]) -> dict[str, str]:
    """The image ID of each backend host's serving container ('' when there is none)."""
    return {name: inspect(hosts[name], serving(hosts[name])).get("Image", "") for name in BACKENDS}


def registry_tags(host: Any, name: str) -> tuple[int, list[str]]:
    """The tags of `name` in the fleet's registry (and the status of the answer), asked
    from `host` with the backend hosts' login (inventory/host_vars; tests only)."""
    login = yaml.safe_load((SCENARIO / "inventory" / "host_vars" / f"{SECOND}.yml").read_text())
    user, password = (
        login["backend_image_registry_username"],
        login["backend_image_registry_password"],
    )
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    status, body = http(
        host, f"http://{REGISTRY}/v2/{name}/tags/list", headers={"Authorization": f"Basic {basic}"}
    )
    return status, list(body.get("tags") or []) if isinstance(body, dict) else []


def archives_of(image: str) -> list[str]:
    """The controller's cached archives of `image`, any build of its tag
    (roles/release/tasks/ship_archive.yml names them
    <name>_<tag>-<arch>-<12 hex of the image ID>.tar)."""
    prefix = f"{image.replace('/', '_').replace(':', '_')}-x86_64-"
    return sorted(path.name for path in IMAGE_CACHE.glob(f"{prefix}*.tar"))


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any], next_compatible) -> dict[str, Any]:
    hooks = REPORTS / "hooks.log"
    hooks.unlink(missing_ok=True)
    done: dict[str, Any] = {"hooks": hooks}
    done["rollout"] = deploy(
        "rollout",
        "-v",
        *("-e", f"backend_project_dir={next_compatible}"),
        *("-e", f"backend_image_registry={REGISTRY}"),
        *hook_args("deploy", str(hooks)),
    )
    done["rolled-out"] = {name: record(hosts[name]) for name in BACKENDS}
    done["rolled-out-ids"] = serving_image_ids(hosts)
    done["build-cache"] = sh(
        hosts[SECOND], "docker system df --format '{{.Type}}={{.Size}}'"
    ).splitlines()
    image = done["rolled-out"][CANARY]["image"]
    done["registry-tags"] = registry_tags(hosts[SECOND], image.rsplit(":", 1)[0])
    done["second-digests"] = (
        hosts[SECOND].run(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {image}").stdout
    )
    done["rollback"] = ansible_playbook(
        "rollback", *hook_args("rollback", str(hooks)), playbook("rollback")
    )
    done["rolled-back"] = {name: record(hosts[name]) for name in BACKENDS}
    done["rolled-back-ids"] = serving_image_ids(hosts)
    return done


# --- the release with a migration: rolled across both ---------------------------------------


def test_the_release_with_a_migration_rolled_out_on_both_hosts(story):
    run: Run = story["rollout"]
    assert run.rc == 0, f"the rollout of the release with migration 0004 failed: {run}"
    states = {host: state for host, (_, state) in run.table().items()}
    assert states == {CANARY: "rolled out", SECOND: "rolled out"}, states


def test_the_canary_cut_over_before_the_second_host(story):
    canary, second = story["rolled-out"][CANARY], story["rolled-out"][SECOND]
    assert canary["deployed_at"] < second["deployed_at"], (
        f"expected the canary first: {canary['deployed_at']} vs {second['deployed_at']}"
    )


def test_only_the_canary_ran_the_migrations(story):
    results = story["rollout"].results("Run migrations and the model prefetch")
    migrated = sorted(host for host, text in results.items() if "migrate-seed: applying" in text)
    prefetched = sorted(host for host, text in results.items() if "prefetch: fetching" in text)
    assert migrated == [CANARY], f"expected only {CANARY} to run migrate-seed, got {migrated}"
    assert prefetched == [CANARY, SECOND], f"expected the prefetch on both hosts, got {prefetched}"


@pytest.mark.parametrize("after", ["rolled-out", "rolled-back"])
def test_both_hosts_run_the_same_image_id(story, after):
    ids = story[f"{after}-ids"]
    assert ids[CANARY] and ids[CANARY] == ids[SECOND], (
        f"{after}: expected one image ID on both hosts, got {ids}"
    )


def test_the_second_host_built_no_image(story):
    cache = dict(line.split("=", 1) for line in story["build-cache"]).get("Build Cache")
    assert cache == "0B", (
        f"expected no build cache on {SECOND} (the image is carried, not built), got {cache}"
    )


# --- how the image travelled: the registry for the next release, an archive at converge -----


def test_the_next_release_came_to_the_second_host_through_the_registry(story):
    image = story["rolled-out"][CANARY]["image"]
    name, tag = image.rsplit(":", 1)
    status, tags = story["registry-tags"]
    assert status == 200 and tag in tags, (
        f"{image} is not in the registry, which answered {status} with {name}'s tags {tags}"
    )
    assert f"{REGISTRY}/{name}@sha256:" in story["second-digests"], (
        f"{SECOND} did not pull {image}: {story['second-digests']}"
    )
    assert not archives_of(image), f"{image} also went through the controller"


def test_the_converged_release_came_to_the_second_host_as_an_archive(converged):
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


# --- the hooks and the rollback -------------------------------------------------------------


@pytest.mark.parametrize("run", ["deploy", "rollback"])
def test_the_hooks_took_each_host_out_and_back_in_batch_order(story, run):
    calls = [(host, phase) for host, phase, _ in hook_calls(story["hooks"], run)]
    expected = [(CANARY, "pre"), (CANARY, "post"), (SECOND, "pre"), (SECOND, "post")]
    assert calls == expected, f"{run}: hook calls {calls}, expected {expected}"


@pytest.mark.parametrize(("run", "after"), [("deploy", "rolled-out"), ("rollback", "rolled-back")])
def test_the_hooks_were_told_the_release_each_host_went_to(story, run, after):
    records = story[after]
    told = sorted(hook_calls(story["hooks"], run))
    went = sorted(
        (host, phase, records[host]["release"]) for host in BACKENDS for phase in ("pre", "post")
    )
    assert told == went, f"{run}: the hooks were told {told}, the hosts went to {went}"


def test_the_rollback_brought_both_hosts_back_to_the_converged_release(story, converged):
    run: Run = story["rollback"]
    assert run.rc == 0, f"rollback.yml failed: {run}"
    releases = {host: story["rolled-back"][host]["release"] for host in BACKENDS}
    assert releases == {host: converged["records"][host]["release"] for host in BACKENDS}, releases
    images = {host: story["rolled-back"][host]["image"] for host in BACKENDS}
    assert images == converged["images"], images
    states = {host: state for host, (_, state) in run.table().items()}
    assert states == {CANARY: "rolled back", SECOND: "rolled back"}, states
