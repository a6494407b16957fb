"""A prefetch killed mid-download on the deployed host (SIGKILL: the memory limit, a power
cut, `docker kill`), then finished by the next deploy:
1. a deploy adds a repo (nica/minilm-interrupted, the same files as the public one) while
   the local Hub streams slowly; once part of the weights is on disk, the one-shot
   `prepare` container gets SIGKILL. The deploy must fail saying so, the serving release
   must go on serving, the cache must hold no partial file that looks complete and no
   manifest entry for the repo;
2. the same deploy again, the Hub at full speed but answering 503 to each file's first
   GET: the prefetch retries, the snapshot is completed, only the missing files are
   fetched, and the new model gives the private one's vectors (the same files);
3. deploy.yml with the inventory's repos again, for the stories that follow.
"""

import hashlib
import json
import time
from typing import Any

import numpy as np
import pytest
from runs import REPO, deploy, http, inspect, serving, sh, vars_file

SOURCE = REPO / "build" / "hub-data" / "all-MiniLM-L6-v2"  # what the fake Hub serves for it
WEIGHTS = "model.safetensors"
REPO_ID = "nica/minilm-interrupted"
KILLED = "/var/log/fake-hub/prefetch-killed.json"
HUB_LOG = "/var/log/fake-hub/requests.jsonl"
TOOLS = "/usr/local/lib/nica-tests"  # prepare.yml installs molecule/default/files/ there
SENTENCE = "A deploy killed halfway must not leave a model that looks complete."


def hub_faults(host: Any, faults: str) -> None:
    """Restart the fake Hub with the test faults given (prepare.yml: FAKE_HUB_FAULTS)."""
    sh(
        host,
        f"echo 'FAKE_HUB_FAULTS={faults}' > /etc/fake-hub/faults.env"
        " && systemctl restart fake-hf-hub",
    )
    deadline = time.monotonic() + 30
    while (
        host.run(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080), 1)'"
        ).rc
        != 0
    ):
        assert time.monotonic() < deadline, "the fake Hub did not come back"
        time.sleep(0.5)


def log_lines(host: Any) -> int:
    return int(sh(host, f"wc -l < {HUB_LOG}").strip())


@pytest.fixture(scope="module")
def run(host: Any, local_vars: dict[str, Any]) -> dict[str, Any]:
    cache = sh(host, "docker volume inspect -f '{{.Options.device}}' hf-cache").strip()
    repo_dir = f"{cache}/hub/models--{REPO_ID.replace('/', '--')}"
    variables = vars_file(
        "interrupted-repos",
        {"backend_hf_model_repos": [*local_vars["backend_hf_model_repos"], REPO_ID]},
    )
    before = inspect(host, serving(host))
    done: dict[str, Any] = {"repo": REPO_ID, "before": [before["Id"], before["State"]["StartedAt"]]}
    hub_faults(host, "--throttle 2000000")  # 2 MB/s
    start = log_lines(host)
    # A transient unit watches while the deploy below runs.
    sh(
        host,
        f"rm -f {KILLED} && systemd-run --unit=nica-kill-prefetch --collect"
        f" {TOOLS}/kill_prefetch.sh {repo_dir}/blobs 1048576 {KILLED}",
    )
    killed = deploy("interrupted-deploy", "-e", variables)
    host.run("systemctl stop nica-kill-prefetch")
    assert host.file(KILLED).exists, (
        f"the prepare container was never killed (no partial download appeared): {killed}"
    )
    done["killer"] = json.loads(host.file(KILLED).content_string)
    done["killed_deploy"] = killed
    after = inspect(host, serving(host))
    done["after"] = [after["Id"], after["State"]["StartedAt"]]
    done["readyz_after"], _ = http(host, "http://127.0.0.1:8000/readyz")
    done["tree_killed"] = json.loads(sh(host, f"python3 {TOOLS}/cache_tree.py {repo_dir}"))
    done["manifest_killed"] = json.loads(
        host.file(f"{cache}/prefetch-manifest.json").content_string
    )["models"]
    hub_faults(host, "--fail-first 1")
    retry = log_lines(host)
    done["redeploy"] = deploy("interrupted-redeploy", "-e", variables)
    done["hub_log"] = {"start": start, "retry": retry, "end": log_lines(host)}
    hub_faults(host, "")
    done["tree_done"] = json.loads(sh(host, f"python3 {TOOLS}/cache_tree.py {repo_dir}"))
    done["manifest_done"] = json.loads(host.file(f"{cache}/prefetch-manifest.json").content_string)[
        "models"
    ]
    done["embeddings"] = [
        http(host, "http://127.0.0.1:8000/v1/embeddings", {"input": SENTENCE, "model": model})[1]
        # the private repo: the same files, on the same runtime (no ONNX file in either)
        for model in (REPO_ID, "nica/private-minilm")
    ]
    done["back_to_the_inventory"] = deploy("interrupted-back")
    return done


@pytest.fixture(scope="module")
def source() -> dict[str, str]:
    """SHA-256 of each file of the repo as the Hub serves it, by path."""
    files = {
        str(path.relative_to(SOURCE)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in SOURCE.rglob("*")
        if path.is_file()
    }
    assert WEIGHTS in files and len(files) > 5, f"{SOURCE} holds only {sorted(files)}"
    return files


def snapshot_files(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The snapshot's files by their path in the repo (`snapshots/<commit>/<path>`)."""
    return {
        path.split("/", 2)[2]: entry
        for path, entry in tree.items()
        if path.startswith("snapshots/") and path.count("/") >= 2
    }


def test_the_prepare_container_was_killed_mid_file(run):
    killer = run["killer"]
    size = (SOURCE / WEIGHTS).stat().st_size
    assert killer["containers"], "no prepare container was killed"
    assert 0 < killer["partial_bytes"] < size, (
        f"killed with {killer['partial_bytes']} of {size} bytes on disk"
    )


def test_the_killed_deploy_failed_naming_the_kill(run):
    assert run["killed_deploy"].rc != 0, "a deploy whose prepare step was killed must fail"
    failures = [
        line for line in run["killed_deploy"].output.splitlines() if "was not rolled out" in line
    ]
    assert failures, "the killed deploy did not say the release was not rolled out"
    assert any(
        "killed by SIGKILL (exit 137" in line and "Still serving:" in line for line in failures
    ), f"the failure does not say the prepare step was killed and what serves: {failures[0][:300]}"


def test_the_previous_release_kept_serving(run):
    assert run["after"] == run["before"], "the serving container was replaced or restarted"
    assert run["readyz_after"] == 200, "the backend was not ready after the killed deploy"


def test_the_killed_download_left_only_an_incomplete_blob(run, source):
    tree = run["tree_killed"]
    partial = [path for path in tree if path.endswith(".incomplete")]
    assert partial, f"no *.incomplete blob after the kill: {sorted(tree)}"
    blobs = {
        path: entry
        for path, entry in tree.items()
        if path.startswith("blobs/") and not path.endswith(".incomplete")
    }
    assert blobs, f"no whole blob after the kill, nothing to check: {sorted(tree)}"
    unknown = {path for path, entry in blobs.items() if entry["sha256"] not in source.values()}
    assert not unknown, f"blobs that are no complete file of the repo: {sorted(unknown)}"


def test_the_killed_snapshot_holds_no_weights_and_only_whole_files(run, source):
    files = snapshot_files(run["tree_killed"])
    assert files, (
        f"no file in the snapshot after the kill, nothing to check: {sorted(run['tree_killed'])}"
    )
    assert WEIGHTS not in files, f"{WEIGHTS} is in the snapshot after the kill"
    wrong = {path for path, entry in files.items() if entry["sha256"] != source.get(path)}
    assert not wrong, f"snapshot files that differ from the Hub's: {sorted(wrong)}"


def test_the_killed_prefetch_recorded_nothing(run):
    assert run["repo"] not in run["manifest_killed"], "a killed prefetch must not record the repo"


def test_the_next_deploy_completed_the_snapshot(run, source):
    assert run["redeploy"].rc == 0, str(run["redeploy"])
    entry = run["manifest_done"][run["repo"]]
    files = snapshot_files(run["tree_done"])
    commits = {path.split("/")[1] for path in run["tree_done"] if path.startswith("snapshots/")}
    assert commits == {entry["commit"]}, f"snapshots {commits}, manifest {entry['commit']}"
    recorded = {item["path"] for item in entry["files"]}
    assert WEIGHTS in recorded and "tokenizer.json" in recorded
    assert set(files) == recorded, f"snapshot {sorted(files)} vs manifest {sorted(recorded)}"
    wrong = {path for path in recorded if files[path]["sha256"] != source[path]}
    assert not wrong, f"completed files that differ from the Hub's: {sorted(wrong)}"


def test_the_next_deploy_removed_the_partial_file(run):
    assert any(path.startswith("blobs/") for path in run["tree_done"]), (
        f"no blob in the cache after the second deploy: {sorted(run['tree_done'])}"
    )
    leftovers = [path for path in run["tree_done"] if path.endswith(".incomplete")]
    assert leftovers == [], f"the killed run's partial file is still there: {leftovers}"


def retry_gets(run: dict[str, Any], hub_log: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(path in the repo, HTTP status) of each file GET the Hub saw during the second deploy."""
    return [
        (record["path"].split("/resolve/", 1)[1].split("/", 1)[1], record["status"])
        for record in hub_log[run["hub_log"]["retry"] : run["hub_log"]["end"]]
        if record["method"] == "GET" and record["path"].startswith(f"/{run['repo']}/resolve/")
    ]


def test_the_killed_deploy_was_downloading_the_weights(run, hub_log):
    # The Hub's log from the first deploy's start to the kill: the weights were requested.
    gets = [
        record["path"].rsplit("/", 1)[1]
        for record in hub_log[run["hub_log"]["start"] : run["hub_log"]["retry"]]
        if record["method"] == "GET" and record["path"].startswith(f"/{run['repo']}/resolve/")
    ]
    assert WEIGHTS in gets, f"the killed deploy never asked the Hub for {WEIGHTS}: {gets}"


def test_the_next_deploy_fetched_only_what_was_missing(run, hub_log):
    whole = set(snapshot_files(run["tree_killed"]))
    fetched = [path for path, status in retry_gets(run, hub_log) if status == 200]
    assert whole and fetched, f"nothing to compare: whole before {whole}, fetched {fetched}"
    assert fetched.count(WEIGHTS) == 1, f"the weights were fetched {fetched.count(WEIGHTS)} times"
    again = sorted(whole & set(fetched))
    assert again == [], f"files already whole before the kill were fetched again: {again}"


def test_the_next_deploy_retried_a_hub_error(run, hub_log):
    # The Hub answered 503 to each file's first GET during the second deploy.
    statuses = [status for path, status in retry_gets(run, hub_log) if path == WEIGHTS]
    assert statuses == [503, 200], f"GETs of the weights answered {statuses}, want [503, 200]"


def test_the_completed_model_gives_the_same_vectors(run):
    completed, public = run["embeddings"]
    assert "data" in completed, f"the completed model did not answer: {completed}"
    a = np.array(completed["data"][0]["embedding"])
    b = np.array(public["data"][0]["embedding"])
    assert np.allclose(a, b, atol=1e-6), f"max difference {np.abs(a - b).max()}"


def test_the_inventorys_repos_deploy_again(run):
    assert run["back_to_the_inventory"].rc == 0, str(run["back_to_the_inventory"])


def test_no_partial_file_is_left_in_the_cache(sh, cache_dir):
    blobs = sh(f"find {cache_dir}/hub -path '*/blobs/*' -type f").split()
    assert len(blobs) > 5, f"the cache holds only {len(blobs)} blobs, nothing to check"
    leftovers = sh(f"find {cache_dir}/hub -name '*.incomplete'").split()
    assert leftovers == [], f"partial downloads left in the cache: {leftovers}"
