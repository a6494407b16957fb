"""The model cache key's lifecycle, as an operator lives it (roles/model_cache):
1. rotation while the backend serves: `deploy.yml --tags model_cache -e model_cache_key=NEW
   -e model_cache_previous_key=OLD` (-vvv --diff): a protector for the new key is added,
   the old one's removed, nothing re-encrypted, downloaded or restarted;
2. a simulated reboot: the stack stopped, the cache locked, its filesystem unmounted. On
   disk only ciphertext, and no plaintext copy of the model anywhere on the host; Docker
   refuses to start the backend on the unmounted cache (and creates no directory); once
   mounted again but locked, the backend refuses to serve ("model cache locked"), /readyz
   says so, the old key does not unlock it, status.yml fails naming the restarting
   backend; a model_cache run whose `fscrypt unlock` fails still removes the key's tmpfs;
   then `--tags model_cache` alone unlocks it and Docker brings the same backend back with
   the same cached files, no download;
3. the opt-in persisted key (rotating back to the inventory's key, -vvv --diff): a root-only
   key file outside the encrypted filesystem and a boot unit before docker; after another
   reboot the inventory's key itself opens the cache, the boot unit unlocks it, and the
   stack Docker starts serves with no deploy; then deploy.yml with the inventory's
   settings removes the key file and the unit again (test_model_cache checks the end).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import time
from typing import Any

import pytest
from conftest import (
    CACHE_DIR,
    CACHE_IMAGE,
    CACHE_MARKER,
    CACHE_MOUNT,
    KEY_FILE,
    REPO,
    protector_name,
)
from runs import (
    Run,
    ansible_playbook,
    deploy,
    http,
    inspect,
    playbook,
    ready_status,
    record,
    sh,
    vars_file,
)

TOOLS = "/usr/local/lib/nica-tests"  # prepare.yml installs molecule/default/files/ there
UNIT = "nica-model-cache-unlock.service"
WEIGHTS_ON_CONTROLLER = REPO / "build" / "hub-data" / "all-MiniLM-L6-v2" / "model.safetensors"


def protectors(status: str) -> list[str]:
    return re.findall(r'raw key protector "([^"]+)"', status)


def policy(status: str) -> str:
    found = re.search(r"^Policy:\s+(\S+)$", status, re.M)
    assert found, status
    return found.group(1)


def fscrypt_status(host: Any) -> str:
    return sh(host, f"fscrypt status {CACHE_DIR}")


def mount_unit(host: Any) -> str:
    """The cache's mount unit, quoted for the shell (its name holds backslashes)."""
    return shlex.quote(sh(host, f"systemd-escape --path --suffix=mount {CACHE_MOUNT}").strip())


def reboot(host: Any) -> None:
    """What a reboot does to the cache: the stack stops, the key leaves memory (locked),
    the filesystem is unmounted."""
    sh(host, "cd /opt/nica/compose && docker compose stop")
    sh(host, f"fscrypt lock {CACHE_DIR}")
    sh(host, f"systemctl stop {mount_unit(host)}")


def unlock_by_hand(host: Any, key: str) -> Any:
    """fscrypt unlock with a base64 key (on stdin into a temp file in /run, removed after)."""
    script = (
        'key=$(mktemp -p /run); trap \'rm -f "$key"\' EXIT; base64 --decode > "$key";'
        f' fscrypt unlock {CACHE_DIR} --key="$key" --quiet'
    )
    # Tests only: the key is on this command line (a disposable host, a test key).
    return host.run(f"printf %s {shlex.quote(key)} | sh -c {shlex.quote(script)}")


def start_as_at_boot(host: Any) -> None:
    """Docker restarts what was running (restart: unless-stopped), not the standby slot."""
    slot = record(host)["slot"]
    sh(
        host,
        "cd /opt/nica/compose && docker compose up --detach --no-recreate"
        f" postgres backend-{slot} proxy",
    )


def logs(host: Any, container: str) -> list[str]:
    result = host.run(f"docker logs --tail 5 {container}")
    return [result.stdout, result.stderr]


def wait_ready(host: Any, seconds: int = 120) -> tuple[int, int]:
    """/readyz through the proxy until 200 (Docker's restart back-off is at most a minute,
    then the backend loads its models): (the last answer, attempts)."""
    attempts, status = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attempts += 1
        status = ready_status(host)
        if status == 200:
            break
        time.sleep(2)
    return status, attempts


def files(host: Any) -> list[str]:
    """path|size|mtime|inode of every cached file: the same after a reboot means the very
    same files, not a new download."""
    return sorted(sh(host, f"find {CACHE_DIR} -type f -printf '%P|%s|%T@|%i\\n'").splitlines())


@pytest.fixture(scope="module")
def rotation(host: Any, cache_key: str, rotated_key: str) -> dict[str, Any]:
    before, backend = fscrypt_status(host), inspect(host, f"nica-backend-{record(host)['slot']}-1")
    run = deploy(
        "rotate-to-new", "-vvv", "--diff", "--tags", "model_cache",
        "-e", vars_file("rotate-to-new", {"model_cache_key": rotated_key,
                                          "model_cache_previous_key": cache_key}),
    )  # fmt: skip
    after = inspect(host, f"nica-backend-{record(host)['slot']}-1")
    return {
        "run": run,
        "status_before": before,
        "status_after": fscrypt_status(host),
        "backend": [backend["State"]["StartedAt"], after["State"]["StartedAt"]],
        "readyz_after": http(host, "http://127.0.0.1:8000/readyz")[0],
    }


@pytest.fixture(scope="module")
def rebooted(
    host: Any, rotation: dict[str, Any], cache_key: str, rotated_key: str
) -> dict[str, Any]:
    slot = record(host)["slot"]
    serving = f"nica-backend-{slot}-1"
    sh(host, "wc -l < /var/log/fake-hub/requests.jsonl > /var/log/fake-hub/reboot-start")
    done: dict[str, Any] = {"files_before": files(host)}
    reboot(host)
    done["loops_after_unmount"] = sh(host, f"losetup --associated {CACHE_IMAGE}").split("\n")[:-1]
    # debugfs reads the unmounted filesystem as it is on disk.
    done["on_disk"] = sh(
        host, f"debugfs -R 'ls -l /hf-cache' {CACHE_IMAGE} 2>/dev/null"
    ).splitlines()
    done["on_disk_raw"] = base64.b64decode(
        sh(host, f"debugfs -R 'ls -p /hf-cache' {CACHE_IMAGE} 2>/dev/null | base64 --wrap=0")
    )
    done["at_rest"] = json.loads(
        sh(
            host,
            f"python3 {TOOLS}/probe_at_rest.py --image {CACHE_IMAGE}"
            " --reference /srv/hub-data/all-MiniLM-L6-v2"
            " --exclude /srv/hub-data --exclude /srv/hub-extra --exclude /srv/fake-hub",
        )
    )
    done["up_unmounted"] = host.run(
        f"cd /opt/nica/compose && docker compose up --detach --no-deps backend-{slot}"
    )
    done["dir_exists_unmounted"] = host.file(CACHE_DIR).exists
    sh(host, f"systemctl start {mount_unit(host)}")  # mounted again, as at boot: still locked
    done["status_mounted"] = fscrypt_status(host)
    done["old_key"] = unlock_by_hand(host, cache_key)
    start_as_at_boot(host)
    # Between two attempts Docker shows it "restarting".
    deadline, crashing = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        crashing = inspect(host, serving)
        if crashing["RestartCount"] >= 2 and crashing["State"]["Status"] == "restarting":
            break
        time.sleep(2)
    done["crashing"] = {
        "status": crashing["State"]["Status"],
        "restarts": crashing["RestartCount"],
        "health": crashing["State"].get("Health", {}).get("Status", "none"),
        "logs": [line for out in logs(host, serving) for line in out.splitlines()],
    }
    # /readyz of the app started without the entrypoint's check.
    done["readyz_locked"] = host.run(
        "cd /opt/nica/compose && docker compose run --rm --no-deps -T --entrypoint sh"
        f" backend-{slot} -s"
        f" < {TOOLS}/readyz_locked.sh"
    )
    done["status_not_ready"] = ansible_playbook("status-not-ready", playbook("status"))
    # The role must unmount the key's tmpfs even when the step that uses the key fails.
    sh(host, f"install -m 0755 {TOOLS}/fscrypt_refuse_unlock.sh /usr/local/sbin/fscrypt")
    try:
        done["failed_unlock"] = deploy(
            "reboot-failed-unlock", "-vvv", "--diff", "--tags", "model_cache",
            "-e", vars_file("new-key", {"model_cache_key": rotated_key}),
        )  # fmt: skip
    finally:
        sh(host, "rm -f /usr/local/sbin/fscrypt")
    done["tmpfs_mounted"] = host.run("findmnt --noheadings /run/nica-model-cache-key").rc == 0
    done["tmpfs_dir_exists"] = host.file("/run/nica-model-cache-key").exists
    # `--tags model_cache` alone unlocks; Docker's next restart brings the backend back.
    done["container_before"] = inspect(host, serving)["Id"]
    done["redeploy"] = deploy(
        "reboot-redeploy", "-vvv", "--diff", "--tags", "model_cache",
        "-e", vars_file("new-key", {"model_cache_key": rotated_key}),
    )  # fmt: skip
    done["readyz"], done["attempts"] = wait_ready(host)
    done["container_after"] = inspect(host, serving)["Id"]
    done["files_after"] = files(host)
    return done


@pytest.fixture(scope="module")
def persisted(
    host: Any, rebooted: dict[str, Any], cache_key: str, rotated_key: str
) -> dict[str, Any]:
    done: dict[str, Any] = {}
    done["run"] = deploy(
        "rotate-back", "-vvv", "--diff", "--tags", "model_cache",
        "-e", vars_file("rotate-back", {"model_cache_key": cache_key,
                                        "model_cache_previous_key": rotated_key,
                                        "model_cache_persist_key": True}),
    )  # fmt: skip
    key, key_dir = host.file(KEY_FILE), host.file(KEY_FILE.rsplit("/", 1)[0])
    done["key_file"] = {
        "exists": key.exists,
        "mode": f"{key.mode:04o}" if key.exists else "",
        "uid": key.uid if key.exists else -1,
        "dir_mode": f"{key_dir.mode:04o}" if key_dir.exists else "",
        "filesystem": sh(host, f"findmnt --noheadings --output TARGET --target {KEY_FILE}").strip(),
    }
    done["unit"] = dict(
        line.split("=", 1)
        for line in sh(
            host, f"systemctl show {UNIT} -p UnitFileState -p Before -p RequiresMountsFor"
        ).splitlines()
    )
    reboot(host)
    # Proof that the inventory's key itself opens the cache (not a protector name rebuilt
    # from the role's rule): mounted locked, unlocked with that key, a model file read.
    sh(host, f"systemctl start {mount_unit(host)}")
    done["status_locked"] = fscrypt_status(host)
    done["inventory_unlock"] = unlock_by_hand(host, cache_key)
    done["weights_sha256"] = host.run(
        f"sha256sum {CACHE_DIR}/hub/models--nica--private-minilm"
        "/snapshots/*/model.safetensors | cut -d' ' -f1"
    ).stdout.strip()
    sh(host, f"fscrypt lock {CACHE_DIR} && systemctl stop {mount_unit(host)}")
    sh(host, f"systemctl start {UNIT}")  # as systemd does at boot
    done["status_after_boot"] = fscrypt_status(host)
    serving = f"nica-backend-{record(host)['slot']}-1"
    before = inspect(host, serving)["Id"]
    start_as_at_boot(host)  # no deploy
    readyz, attempts = wait_ready(host)
    after = inspect(host, serving)
    done["back_after_boot"] = {
        "readyz": readyz,
        "attempts": attempts,
        "container_before": before,
        "container_after": after["Id"],
        "restarts": after["RestartCount"],
    }
    done["inventory_settings"] = deploy("persist-back-to-the-inventory")
    return done


def steps(run: Run, *tasks: str) -> dict[str, list[str]]:
    """The statuses of these model_cache tasks in a run's output."""
    statuses = run.tasks()
    return {task: statuses.get(f"model_cache : {task}", []) for task in tasks}


# --- 1. rotation ---


def test_rotation_succeeded(rotation):
    run: Run = rotation["run"]
    assert run.rc == 0 and run.recap()["failed"] == 0, str(run)
    done = steps(
        run,
        "Create a protector for the new key",
        "Let the new key's protector unlock the cache too",
        "Stop the previous key from unlocking the cache",
        "Destroy the previous key's protector",
    )
    assert all(statuses == ["changed"] for statuses in done.values()), (
        f"each rotation step should have changed once: {done}"
    )


def test_rotation_swapped_the_old_protector_for_the_new_one(rotation, cache_key, rotated_key):
    assert protectors(rotation["status_before"]) == [protector_name(cache_key)]
    assert protectors(rotation["status_after"]) == [protector_name(rotated_key)]


def test_rotation_kept_the_policy_so_nothing_was_re_encrypted(rotation):
    assert policy(rotation["status_after"]) == policy(rotation["status_before"])


def test_rotation_did_not_interrupt_the_backend(rotation):
    before, after = rotation["backend"]
    assert after == before, "the backend was restarted"
    assert rotation["readyz_after"] == 200


# --- 2. the reboot ---


def test_unmounting_detached_the_loop_device(rebooted):
    assert rebooted["loops_after_unmount"] == [], (
        f"still attached: {rebooted['loops_after_unmount']}"
    )


def test_entry_names_on_disk_are_ciphertext(rebooted):
    # debugfs `ls -l` shows encrypted names as <encrypted (N)>; the 9th field is the name.
    names = [line.split(maxsplit=8)[8] for line in rebooted["on_disk"] if line.strip()]
    entries = [name for name in names if name not in (".", "..")]
    assert len(entries) == 3, f"expected the marker, hub/ and the manifest, got {names}"
    assert all(name.startswith("<encrypted (") for name in entries), names


@pytest.mark.parametrize(
    "plaintext", [b"/hub/", b"prefetch-manifest.json", CACHE_MARKER.encode(), b"models--"]
)
def test_raw_directory_entries_hold_no_plaintext_name(rebooted, plaintext):
    assert plaintext not in rebooted["on_disk_raw"], (
        f"{plaintext!r} is readable in the locked directory on disk"
    )


@pytest.mark.parametrize(
    "needle",
    [
        "safetensors header",
        "tensor data",
        "vocab.txt",
        "config.json",
        "manifest key",
        "snapshot folder",
    ],
)
def test_image_holds_no_plaintext_of_the_cache(rebooted, needle):
    assert rebooted["at_rest"]["needles"][needle] is False, f"{needle} is in the image in plaintext"


def test_no_plaintext_copy_of_the_weights_on_the_host(rebooted):
    at_rest = rebooted["at_rest"]
    assert at_rest["scanned"] > 1000, f"only {at_rest['scanned']} files were scanned"
    assert at_rest["copies"] == [], f"plaintext model weights found at {at_rest['copies']}"


def test_docker_refuses_to_start_the_backend_on_an_unmounted_cache(rebooted):
    up = rebooted["up_unmounted"]
    assert up.rc != 0, "the backend started although its cache was not mounted"
    # Docker's own words: the hf-cache volume's bind source, the cache directory, is missing.
    said = " ".join(up.stderr.split())
    expected = f"failed to mount local volume: mount {CACHE_DIR}:"
    assert expected in said and said.endswith("no such file or directory"), (
        f"expected Docker to refuse the hf-cache volume ({expected}... no such file or"
        f" directory), got: {said[-400:]}"
    )


def test_docker_did_not_create_the_missing_directory(rebooted):
    assert rebooted["dir_exists_unmounted"] is False, "Docker created the cache directory"


def test_cache_is_locked_after_the_mount(rebooted):
    assert "Unlocked: No" in rebooted["status_mounted"].splitlines(), rebooted["status_mounted"]


def test_the_rotated_out_key_no_longer_unlocks(rebooted):
    old_key = rebooted["old_key"]
    assert old_key.rc != 0, "the key rotated away from still unlocked the cache"
    assert "incorrect key" in old_key.stderr, old_key.stderr


def test_backend_refuses_to_serve_a_locked_cache(rebooted):
    crashing = rebooted["crashing"]
    assert crashing["restarts"] >= 2 and crashing["health"] != "healthy", crashing
    assert crashing["status"] == "restarting", (
        f"the backend should be in Docker's restart loop, it is {crashing['status']}"
    )
    assert any(line.startswith("error: model cache locked") for line in crashing["logs"]), (
        f"no 'model cache locked' error in the backend's log: {crashing['logs']}"
    )


def test_readyz_says_the_model_cache_is_locked(rebooted):
    probe = rebooted["readyz_locked"]
    assert probe.rc == 0, f"/readyz did not answer: {probe.stderr[-500:]}"
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503, f"/readyz answered {answer}"
    assert answer["body"]["checks"]["models"].startswith("model cache locked"), answer


def test_status_fails_naming_the_restarting_backend(rebooted):
    run: Run = rebooted["status_not_ready"]
    assert run.rc != 0, "status.yml passed while the backend was not ready"
    text = " ".join(run.output.split())
    assert "The backend is not ready:" in text, str(run)
    assert "has restarted" in text and "last log line: error: model cache locked" in text, (
        f"status.yml does not name the restarting backend and its cause: {run}"
    )


def test_the_key_tmpfs_is_removed_when_the_step_using_the_key_fails(rebooted):
    run: Run = rebooted["failed_unlock"]
    unlock = run.tasks().get("model_cache : Unlock the cache directory with the key")
    assert run.rc != 0, f"the run with a failing fscrypt unlock succeeded: {run}"
    assert unlock == ["fatal"], f"expected the unlock step to fail, it got {unlock}"
    assert "fscrypt unlock refused by the test wrapper" in run.output
    assert (rebooted["tmpfs_mounted"], rebooted["tmpfs_dir_exists"]) == (False, False), (
        f"after the failed step the key tmpfs is mounted: {rebooted['tmpfs_mounted']}, "
        f"its mount point exists: {rebooted['tmpfs_dir_exists']}; expected neither"
    )


def test_the_rotated_in_key_unlocked_after_the_reboot(rebooted):
    run: Run = rebooted["redeploy"]
    assert run.rc == 0, str(run)
    done = steps(run, "Unlock the cache directory with the key")
    assert done == {"Unlock the cache directory with the key": ["changed"]}, (
        f"the run after the reboot did not unlock the cache with the rotated-in key: {done}"
    )


def test_the_model_cache_role_alone_brings_service_back(rebooted):
    assert rebooted["readyz"] == 200, (
        f"/readyz answered {rebooted['readyz']} after {rebooted['attempts']} tries"
    )
    assert rebooted["container_after"] == rebooted["container_before"], (
        "the backend container was replaced: Docker's restart should have brought it back"
    )


def blobs(listing: list[str]) -> list[str]:
    # the model files themselves (the listing has no snapshot symlinks); not what a prepare
    # rewrites without downloading (the manifest, refs/, lock files)
    return [entry for entry in listing if "/blobs/" in entry]


def test_the_same_cached_files_serve_after_the_reboot(rebooted):
    before, after = blobs(rebooted["files_before"]), blobs(rebooted["files_after"])
    assert len(before) > 10, f"expected the cached model files, got {before}"
    assert after == before, "the model files changed: " + str(sorted(set(after) ^ set(before))[:4])
    assert {f.split("|")[0] for f in rebooted["files_after"]} == {
        f.split("|")[0] for f in rebooted["files_before"]
    }


def test_no_model_file_was_downloaded_after_the_reboot(host, rebooted, hub_log):
    start = int(host.file("/var/log/fake-hub/reboot-start").content_string)
    downloads = [r for r in hub_log[start:] if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert downloads == [], f"model files were downloaded again: {downloads[:3]}"


# --- 3. the persisted key ---


def test_rotating_back_with_a_persisted_key_succeeded(persisted):
    run: Run = persisted["run"]
    assert run.rc == 0, str(run)
    done = steps(
        run,
        "Let the new key's protector unlock the cache too",
        "Destroy the previous key's protector",
        "Write the persisted key",
        "Unlock the cache at boot",
    )
    assert all(statuses == ["changed"] for statuses in done.values()), (
        f"the rotation back should have swapped the protectors and persisted the key: {done}"
    )


def test_persisted_key_is_root_only_and_outside_the_cache(persisted):
    key_file = persisted["key_file"]
    assert key_file["exists"], "model_cache_persist_key did not write the key file"
    assert (key_file["uid"], key_file["mode"], key_file["dir_mode"]) == (0, "0400", "0700")
    assert key_file["filesystem"] != CACHE_MOUNT, "the key must not be on the encrypted filesystem"


def test_boot_unlock_unit_is_enabled_and_runs_before_docker(persisted):
    unit = persisted["unit"]
    assert unit["UnitFileState"] == "enabled"
    assert "docker.service" in unit["Before"].split(), unit["Before"]
    assert CACHE_MOUNT in unit["RequiresMountsFor"].split(), unit["RequiresMountsFor"]


def test_the_inventory_key_unlocks_the_cache(persisted):
    assert "Unlocked: No" in persisted["status_locked"].splitlines(), (
        f"the cache was not locked before the inventory key was tried: {persisted['status_locked']}"
    )
    assert persisted["inventory_unlock"].rc == 0, (
        f"the inventory key did not unlock: {persisted['inventory_unlock'].stderr}"
    )
    reference = hashlib.sha256(WEIGHTS_ON_CONTROLLER.read_bytes()).hexdigest()
    assert persisted["weights_sha256"] == reference, (
        f"model.safetensors read through the unlocked cache hashes"
        f" {persisted['weights_sha256']!r}, expected {reference}"
    )


def test_boot_unlock_unit_unlocks_the_cache(persisted):
    assert "Unlocked: Yes" in persisted["status_after_boot"].splitlines(), persisted[
        "status_after_boot"
    ]


def test_the_backend_serves_by_itself_after_the_boot_unit_unlocked(persisted):
    # The point of persisting the key: after a reboot, Docker starts the stack and it
    # serves with no operator and no deploy.
    back = persisted["back_after_boot"]
    assert back["readyz"] == 200, (
        f"/readyz answered {back['readyz']} after {back['attempts']} tries"
    )
    assert back["container_after"] == back["container_before"], (
        "the serving container was replaced: something other than Docker's start brought it back"
    )
    assert back["restarts"] == 0, (
        f"the backend was restarted {back['restarts']} times: it did not find the cache unlocked"
    )


def test_a_deploy_with_the_inventorys_settings_takes_the_persisted_key_away(persisted):
    assert persisted["inventory_settings"].rc == 0, str(persisted["inventory_settings"])
