"""The simulated reboot: the locked cache at rest, a backend that refuses it, the redeploy."""

import base64
import json

import pytest
from conftest import CACHE_DIR, CACHE_MARKER, REPORTS, report, task_statuses


@pytest.fixture(scope="module")
def reboot():
    return report("model-cache-reboot.json")


@pytest.fixture(scope="module")
def redeploy():
    return report("model-cache-redeploy.json")


def test_unmounting_detached_the_loop_device(reboot):
    assert reboot["loops_after_unmount"] == [], f"still attached: {reboot['loops_after_unmount']}"


def test_entry_names_on_disk_are_ciphertext(reboot):
    # debugfs on the unmounted image: `ls -l` shows encrypted names as <encrypted (N)>;
    # the 9th field is the name (inode, mode, links, uid, gid, size, date, time, name).
    names = [line.split(maxsplit=8)[8] for line in reboot["on_disk"] if line.strip()]
    entries = [name for name in names if name not in (".", "..")]
    assert len(entries) == 3, f"expected the marker, hub/ and the manifest, got {names}"
    assert all(name.startswith("<encrypted (") for name in entries), names


@pytest.mark.parametrize(
    "plaintext", [b"/hub/", b"prefetch-manifest.json", CACHE_MARKER.encode(), b"models--"]
)
def test_raw_directory_entries_hold_no_plaintext_name(reboot, plaintext):
    raw = base64.b64decode(reboot["on_disk_raw_b64"])
    assert plaintext not in raw, f"{plaintext!r} is readable in the locked directory on disk"


@pytest.mark.parametrize(
    "needle",
    ["safetensors header", "tensor data", "vocab.txt", "config.json", "manifest key",
     "snapshot folder"],
)  # fmt: skip
def test_image_holds_no_plaintext_of_the_cache(reboot, needle):
    assert reboot["at_rest"]["needles"][needle] is False, f"{needle} is in the image in plaintext"


def test_no_plaintext_copy_of_the_weights_on_the_host(reboot):
    at_rest = reboot["at_rest"]
    assert at_rest["scanned"] > 1000, f"only {at_rest['scanned']} files were scanned"
    assert at_rest["copies"] == [], f"plaintext model weights found at {at_rest['copies']}"


def test_docker_refuses_to_start_the_backend_on_an_unmounted_cache(reboot):
    up = reboot["up_unmounted"]
    assert up["rc"] != 0, "the backend started although its cache was not mounted"
    # Docker's own words: the hf-cache volume's bind source, the cache directory, is missing.
    said = " ".join(up["stderr"].split())
    expected = f"failed to mount local volume: mount {CACHE_DIR}:"
    assert expected in said and said.endswith("no such file or directory"), (
        f"expected Docker to refuse the hf-cache volume ({expected}... no such file or "
        f"directory), got: {said[-400:]}"
    )


def test_docker_did_not_create_the_missing_directory(reboot):
    assert reboot["dir_exists_unmounted"] is False, "Docker created the cache directory"


def test_cache_is_locked_after_the_mount(reboot):
    assert "Unlocked: No" in reboot["status_mounted"].splitlines(), reboot["status_mounted"]


def test_backend_refuses_to_serve_a_locked_cache(reboot):
    crashing = reboot["crashing"]
    assert crashing["restarts"] >= 2 and crashing["health"] != "healthy", crashing
    assert crashing["status"] == "restarting", (
        f"the backend should be in Docker's restart loop, it is {crashing['status']}"
    )
    assert any(line.startswith("error: model cache locked") for line in crashing["logs"]), (
        f"no 'model cache locked' error in the backend's log: {crashing['logs']}"
    )


def test_readyz_says_the_model_cache_is_locked(reboot):
    probe = reboot["readyz_locked"]
    assert probe["rc"] == 0, f"/readyz did not answer: {probe['stderr'][-500:]}"
    answer = json.loads(probe["stdout"].strip().splitlines()[-1])
    assert answer["status"] == 503, f"/readyz answered {answer}"
    assert answer["body"]["checks"]["models"].startswith("model cache locked"), answer


def test_status_fails_naming_the_restarting_backend(reboot):
    assert reboot["status_not_ready_rc"] != 0, "status.yml passed while the backend was not ready"
    text = " ".join((REPORTS / "status-not-ready.log").read_text().split())
    assert "The backend is not ready:" in text, text[-3000:]
    assert "has restarted" in text and "last log line: error: model cache locked" in text, (
        f"status.yml does not name the restarting backend and its cause: {text[-3000:]}"
    )


def test_the_key_tmpfs_is_removed_when_the_step_using_the_key_fails(reboot):
    failed = reboot["failed_unlock"]
    log = REPORTS / "reboot-failed-unlock.log"
    unlock = task_statuses(log.read_text()).get(
        "model_cache : Unlock the cache directory with the key"
    )
    assert failed["rc"] != 0, f"the run with a failing fscrypt unlock succeeded (see {log})"
    assert unlock == ["fatal"], f"expected the unlock step to fail, it got {unlock}"
    assert "fscrypt unlock refused by the test wrapper" in log.read_text()
    assert (failed["tmpfs_mounted"], failed["tmpfs_dir_exists"]) == (False, False), (
        f"after the failed step the key tmpfs is mounted: {failed['tmpfs_mounted']}, "
        f"its mount point exists: {failed['tmpfs_dir_exists']}; expected neither"
    )


def test_the_model_cache_role_alone_brings_service_back(redeploy):
    assert redeploy["rc"] == 0, (
        "--tags model_cache failed after the reboot (see reboot-redeploy.log)"
    )
    assert redeploy["readyz"] == 200, (
        f"/readyz answered {redeploy['readyz']} after {redeploy['attempts']} tries, expected 200"
    )
    assert redeploy["container_after"] == redeploy["container_before"], (
        "the backend container was replaced: Docker's restart should have brought it back"
    )


def _model_files(listing):
    # path|size|mtime|inode of the blobs, the model files themselves (the listing has
    # no snapshot symlinks); not what a prepare rewrites without downloading (the
    # manifest, refs/, lock files)
    return [f for f in listing if "/blobs/" in f]


def test_redeploy_serves_the_same_cached_files(reboot, redeploy):
    before, after = _model_files(reboot["files_before"]), _model_files(redeploy["files_after"])
    assert len(before) > 10, f"expected the cached model files, got {before}"
    assert after == before, "the model files changed: " + str(sorted(set(after) ^ set(before))[:4])


def test_redeploy_kept_every_cached_path(reboot, redeploy):
    paths = {f.split("|")[0] for f in redeploy["files_after"]}
    assert paths == {f.split("|")[0] for f in reboot["files_before"]}


def test_no_model_file_was_downloaded_after_the_reboot(host, hub_log):
    start = int(host.file("/var/log/fake-hub/reboot-start").content_string)
    downloads = [r for r in hub_log[start:] if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert downloads == [], f"model files were downloaded again: {downloads[:3]}"
