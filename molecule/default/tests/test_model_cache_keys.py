"""The key lifecycle: rotation, the opt-in persisted key, and no key in any output."""

import re
from pathlib import Path

import pytest
from conftest import CACHE_MOUNT, REPORTS, protector_name, recap, report, task_statuses


def _protectors(status: str) -> list[str]:
    return re.findall(r'raw key protector "([^"]+)"', status)


def _policy(status: str) -> str:
    return re.search(r"^Policy:\s+(\S+)$", status, re.M).group(1)


@pytest.fixture(scope="module")
def rotation():
    return report("model-cache-rotation.json")


@pytest.fixture(scope="module")
def persist():
    return report("model-cache-persist.json")


def _log(name: str) -> str:
    return (REPORTS / name).read_text()


def _changed(log: str, *tasks: str) -> dict[str, list[str]]:
    """The statuses of these model_cache tasks in a run's output."""
    statuses = task_statuses(_log(log))
    return {task: statuses.get(f"model_cache : {task}", []) for task in tasks}


def test_rotation_succeeded(rotation):
    assert rotation["rc"] == 0, "the rotation failed (build/reports/rotate-to-new.log)"
    assert recap(_log("rotate-to-new.log"))["failed"] == 0
    steps = _changed(
        "rotate-to-new.log",
        "Create a protector for the new key",
        "Let the new key's protector unlock the cache too",
        "Stop the previous key from unlocking the cache",
        "Destroy the previous key's protector",
    )
    assert all(statuses == ["changed"] for statuses in steps.values()), (
        f"each rotation step should have changed once: {steps}"
    )


def test_rotation_swapped_the_old_protector_for_the_new_one(rotation, cache_key, rotated_key):
    assert _protectors(rotation["status_before"]) == [protector_name(cache_key)]
    assert _protectors(rotation["status_after"]) == [protector_name(rotated_key)]


def test_rotation_kept_the_policy_so_nothing_was_re_encrypted(rotation):
    assert _policy(rotation["status_after"]) == _policy(rotation["status_before"])


def test_rotation_did_not_interrupt_the_backend(rotation):
    assert rotation["backend_after"] == rotation["backend_before"], "the backend was restarted"
    assert rotation["readyz_after"] == 200


def test_the_rotated_out_key_no_longer_unlocks(cache_key):
    old_key = report("model-cache-reboot.json")["old_key"]
    assert old_key["rc"] != 0, "the key rotated away from still unlocked the cache"
    assert "incorrect key" in old_key["stderr"], old_key["stderr"]


def test_the_rotated_in_key_unlocked_after_the_reboot():
    assert report("model-cache-redeploy.json")["rc"] == 0, "see build/reports/reboot-redeploy.log"
    steps = _changed("reboot-redeploy.log", "Unlock the cache directory with the key")
    assert steps == {"Unlock the cache directory with the key": ["changed"]}, (
        f"the run after the reboot did not unlock the cache with the rotated-in key: {steps}"
    )


def test_rotating_back_with_a_persisted_key_succeeded(persist):
    assert persist["rc"] == 0, "the rotation back failed (build/reports/rotate-back.log)"
    steps = _changed(
        "rotate-back.log",
        "Let the new key's protector unlock the cache too",
        "Destroy the previous key's protector",
        "Write the persisted key",
        "Unlock the cache at boot",
    )
    assert all(statuses == ["changed"] for statuses in steps.values()), (
        f"the rotation back should have swapped the protectors and persisted the key: {steps}"
    )


def test_persisted_key_is_root_only_and_outside_the_cache(persist):
    key_file = persist["key_file"]
    assert key_file["exists"], "model_cache_persist_key did not write the key file"
    assert (key_file["uid"], key_file["mode"], key_file["dir_mode"]) == (0, "0400", "0700")
    assert key_file["filesystem"] != CACHE_MOUNT, "the key must not be on the encrypted filesystem"


def test_boot_unlock_unit_is_enabled_and_runs_before_docker(persist):
    unit = persist["unit"]
    assert unit["UnitFileState"] == "enabled"
    assert "docker.service" in unit["Before"].split(), unit["Before"]
    assert CACHE_MOUNT in unit["RequiresMountsFor"].split(), unit["RequiresMountsFor"]


def test_boot_unlock_unit_unlocks_the_cache(persist):
    status = persist["status_after_boot"]
    assert "Unlocked: Yes" in status.splitlines(), status


def test_the_backend_serves_by_itself_after_the_boot_unit_unlocked(persist):
    # The point of persisting the key: after a reboot, Docker starts the stack and it
    # serves with no operator and no deploy.
    back = persist["back_after_boot"]
    assert back["readyz"] == 200, (
        f"/readyz answered {back['readyz']} after {back['attempts']} tries, expected 200 "
        "once the boot unit had unlocked the cache"
    )
    assert back["container_after"] == back["container_before"], (
        "the serving container was replaced: something other than Docker's start brought it back"
    )
    assert back["restarts"] == 0, (
        f"the backend was restarted {back['restarts']} times: it did not find the cache unlocked"
    )


LOGS = [
    "rotate-to-new.log",
    "reboot-redeploy.log",
    "rotate-back.log",
    "wrong-token-deploy.log",
    "no-token-deploy.log",
    "guard-swap.log",
    "guard-data.log",
    "guard-wrong-key.log",
    "reboot-failed-unlock.log",
]


@pytest.mark.parametrize("log", LOGS)
def test_no_key_in_verbose_output(log, cache_key, rotated_key):
    text = Path(REPORTS / log).read_text()
    assert cache_key not in text, f"the inventory's model cache key is in {log}"
    assert rotated_key not in text, f"the rotated key is in {log}"
