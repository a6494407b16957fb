"""A prefetch killed mid-download on the deployed host, then finished by the next deploy.

Recorded by side_effect_interrupted.yml: the one-shot `prepare` container got SIGKILL while
it streamed the weights of an added repo (the same files as the public one), then the same
deploy ran again at full speed.
"""

import hashlib
from typing import Any

import numpy as np
import pytest
from conftest import REPO, REPORTS, report

SOURCE = REPO / "build" / "hub-data" / "all-MiniLM-L6-v2"  # what the fake Hub serves for it
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    return dict(report("interrupted-prefetch.json"))


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
    assert run["killed_deploy_rc"] != 0, "a deploy whose prepare step was killed must fail"
    log = (REPORTS / "interrupted-deploy.log").read_text()
    failures = [line for line in log.splitlines() if "was not rolled out" in line]
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
    assert run["redeploy_rc"] == 0, "see build/reports/interrupted-redeploy.log"
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


def test_no_partial_file_is_left_in_the_cache(sh, cache_dir):
    blobs = sh(f"find {cache_dir}/hub -path '*/blobs/*' -type f").split()
    assert len(blobs) > 5, f"the cache holds only {len(blobs)} blobs, nothing to check"
    leftovers = sh(f"find {cache_dir}/hub -name '*.incomplete'").split()
    assert leftovers == [], f"partial downloads left in the cache: {leftovers}"
