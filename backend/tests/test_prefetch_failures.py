"""Failure handling: 5xx retries, a download killed mid-file, a file lost after a prefetch."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.model_cache.manifest import (
    CachedFile,
    ModelCacheError,
    check_snapshot,
    snapshot_dir,
    verify,
)
from src.model_spec import ModelSpec
from tests.support.fake_hub import PUBLIC_REPO, FakeHub, running_fake_hub
from tests.support.model_data import model_files, sha256
from tests.support.runners import BACKEND_DIR, PREFETCH_CODE, base_env, run_prefetch, run_python

SPEC = ModelSpec(PUBLIC_REPO, "main")
WEIGHTS = "model.safetensors"
THROTTLE = 5_000_000  # bytes/s: the 90 MB weights would take 18 s
KILL_AFTER = 1  # bytes of the weights on disk (written in 10 MiB pieces)


def file_gets(hub: FakeHub, mark: int) -> list[tuple[str, int]]:
    """(file path, status) of each GET .../resolve/{rev}/{path} since mark."""
    gets = []
    for request in hub.requests_since(mark):
        parts = str(request["path"]).split("/resolve/", 1)
        if request["method"] == "GET" and len(parts) == 2:
            gets.append((parts[1].split("/", 1)[1], int(request["status"])))
    return gets


def expected_files(model_dir: Path) -> list[CachedFile]:
    return [CachedFile(path, size) for path, size in model_files(model_dir).items()]


# ---- HTTP 503 on downloads: a bounded retry


@dataclass(frozen=True)
class FlakyRun:
    hub: FakeHub
    hf_home: Path
    result: subprocess.CompletedProcess[str]
    seconds: float


def flaky_run(model_dir: Path, work: Path, fail_first: int) -> Iterator[FlakyRun]:
    """The weights and two small files (fewer files, fewer backoff waits)."""
    env = base_env(
        HF_HOME=str(work / "home"),
        HF_TOKEN_FILE=str(work / "none"),
        HF_MODEL_REPOS=PUBLIC_REPO,
        HF_ALLOW_PATTERNS=f"{WEIGHTS},config.json,vocab.txt",
    )
    with running_fake_hub(model_dir, work, options=["--fail-first", str(fail_first)]) as hub:
        started = time.monotonic()
        result = run_python(["-c", PREFETCH_CODE], {**env, "HF_ENDPOINT": hub.url})
        yield FlakyRun(hub, work / "home", result, time.monotonic() - started)


@pytest.fixture(scope="module")
def twice_503(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlakyRun]:
    """Each file answers 503 to its first two GETs."""
    yield from flaky_run(model_dir, tmp_path_factory.mktemp("hub-503x2"), fail_first=2)


@pytest.fixture(scope="module")
def always_503(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlakyRun]:
    """Each file answers 503 to more GETs than the prefetch tries."""
    yield from flaky_run(model_dir, tmp_path_factory.mktemp("hub-503x9"), fail_first=9)


def test_two_503_answers_are_retried_to_success(twice_503: FlakyRun) -> None:
    assert twice_503.result.returncode == 0, f"expected success: {twice_503.result.stderr}"
    assert verify(twice_503.hf_home, SPEC).commit == twice_503.hub.commit_of(PUBLIC_REPO)


def test_retried_download_got_503_before_the_file(twice_503: FlakyRun) -> None:
    statuses = [status for path, status in file_gets(twice_503.hub, 0) if path == WEIGHTS]
    assert statuses == [503, 503, 200], f"expected 503, 503 then the file, got {statuses}"


def test_persistent_503_fails_with_one_line(always_503: FlakyRun) -> None:
    assert always_503.result.returncode == 1, "a persistent 503 should fail the prefetch"
    assert always_503.result.stderr.splitlines() == [
        f"error: prefetch of {SPEC} failed: the Hub answered HTTP 503"
    ]


def test_persistent_503_is_tried_three_times_per_file(always_503: FlakyRun) -> None:
    tries = Counter(path for path, _ in file_gets(always_503.hub, 0))
    assert set(tries.values()) == {3}, f"each file should be tried 3 times, got {tries}"


def test_persistent_503_gives_up_quickly(always_503: FlakyRun) -> None:
    assert always_503.seconds < 20, f"the retries should be bounded, took {always_503.seconds:.1f}s"


def test_persistent_503_records_nothing(always_503: FlakyRun) -> None:
    assert not (always_503.hf_home / "prefetch-manifest.json").exists()


# ---- SIGKILL while the weights stream, then a second run


@dataclass(frozen=True)
class Killed:
    """What a download killed mid-file left, observed before the next run."""

    hf_home: Path
    commit: str  # of the repo it was fetching (model_dir's files, no ONNX file)
    repo_files: dict[str, int]  # path under models--org--name/ -> size
    manifest_exists: bool
    verify_error: str
    snapshot_error: str


def _tree(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _partial_size(blobs: Path, sha: str) -> int:
    """Bytes on disk of the partial blob `<sha256>.<random>.incomplete`."""
    try:
        return max((p.stat().st_size for p in blobs.glob(f"{sha}.*.incomplete")), default=0)
    except FileNotFoundError:  # renamed while looking: the file is not partial any more
        return 0


def _kill_mid_file(hub: FakeHub, hf_home: Path, weights_sha: str) -> None:
    env = base_env(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(hf_home),
        HF_TOKEN_FILE=str(hf_home / "none"),
        HF_MODEL_REPOS=PUBLIC_REPO,
    )
    process = subprocess.Popen(
        [sys.executable, "-c", PREFETCH_CODE],
        cwd=BACKEND_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    blobs = hf_home / "hub" / SPEC.cache_folder / "blobs"
    deadline = time.monotonic() + 30
    try:
        while _partial_size(blobs, weights_sha) < KILL_AFTER:
            assert process.poll() is None, "the prefetch ended before it could be killed"
            assert time.monotonic() < deadline, "the weights did not start streaming in 30 s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def killed(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    work = tmp_path_factory.mktemp("hub-throttled")
    hf_home = work / "home"
    with running_fake_hub(model_dir, work, options=["--throttle", str(THROTTLE)]) as slow:
        _kill_mid_file(slow, hf_home, sha256(model_dir / WEIGHTS))
        commit = slow.commit_of(PUBLIC_REPO)
    snapshot = snapshot_dir(hf_home, PUBLIC_REPO, commit)
    try:
        verify(hf_home, SPEC)
        verify_error = ""
    except ModelCacheError as error:
        verify_error = str(error)
    try:
        check_snapshot(snapshot, expected_files(model_dir))
        snapshot_error = ""
    except ModelCacheError as error:
        snapshot_error = str(error)
    return Killed(
        hf_home=hf_home,
        commit=commit,
        repo_files=_tree(hf_home / "hub" / SPEC.cache_folder),
        manifest_exists=(hf_home / "prefetch-manifest.json").exists(),
        verify_error=verify_error,
        snapshot_error=snapshot_error,
    )


@pytest.fixture(scope="module")
def resumed(
    killed: Killed, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The next run, against a hub serving the same files at full speed."""
    with running_fake_hub(model_dir, tmp_path_factory.mktemp("hub-full-speed")) as hub:
        return run_prefetch(
            hub_url=hub.url,
            hf_home=killed.hf_home,
            repos=PUBLIC_REPO,
            token_file=killed.hf_home / "none",
        )


def test_killed_download_leaves_only_an_incomplete_blob(killed: Killed, model_dir: Path) -> None:
    size = model_files(model_dir)[WEIGHTS]
    partial = [s for p, s in killed.repo_files.items() if p.endswith(".incomplete")]
    assert len(partial) == 1, f"one partial blob expected, got {killed.repo_files}"
    assert 0 < partial[0] < size, f"the partial blob should be part of the weights: {partial}"
    assert size not in killed.repo_files.values(), "no file should have the weights' full size"


def test_killed_download_has_no_weights_in_the_snapshot(killed: Killed) -> None:
    assert killed.snapshot_error == f"file {WEIGHTS} missing"


def test_killed_download_writes_no_manifest(killed: Killed) -> None:
    assert not killed.manifest_exists, "a killed prefetch must not record the repo"
    assert killed.verify_error == "not in the cache"


def test_next_run_completes_the_snapshot(
    killed: Killed, resumed: subprocess.CompletedProcess[str], model_dir: Path
) -> None:
    assert resumed.returncode == 0, f"the next run should succeed: {resumed.stderr}"
    snapshot = snapshot_dir(killed.hf_home, PUBLIC_REPO, killed.commit)
    assert {p: sha256(snapshot / p) for p in model_files(model_dir)} == {
        p: sha256(model_dir / p) for p in model_files(model_dir)
    }, "every file should match the source byte for byte"


def test_next_run_records_the_manifest(
    killed: Killed, resumed: subprocess.CompletedProcess[str]
) -> None:
    assert verify(killed.hf_home, SPEC).commit == killed.commit


def test_next_run_removes_the_killed_partial_file(
    killed: Killed, resumed: subprocess.CompletedProcess[str]
) -> None:
    leftovers = list((killed.hf_home / "hub").rglob("*.incomplete"))
    assert leftovers == [], f"the killed run's partial file should be gone, got {leftovers}"


# ---- completeness comes from the listing: a file lost after a successful prefetch


@pytest.fixture(scope="module")
def damaged(
    fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory, hub_token_file: Path
) -> Path:
    """A complete cache, then vocab.txt deleted (its snapshot link and its blob)."""
    hf_home = tmp_path_factory.mktemp("hf-home-damaged")
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=hf_home, repos=PUBLIC_REPO, token_file=hub_token_file
    )
    assert result.returncode == 0, f"the first prefetch should succeed: {result.stderr}"
    link = snapshot_dir(hf_home, PUBLIC_REPO, fake_hub.commit_of(PUBLIC_REPO)) / "vocab.txt"
    link.resolve().unlink()
    link.unlink()
    return hf_home


def test_verify_reports_the_lost_file(damaged: Path) -> None:
    with pytest.raises(ModelCacheError, match=r"^file vocab\.txt missing$"):
        verify(damaged, SPEC)


def test_next_prefetch_fetches_only_the_lost_file(
    damaged: Path, fake_hub: FakeHub, hub_token_file: Path, model_dir: Path
) -> None:
    mark = fake_hub.log_mark()
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=damaged, repos=PUBLIC_REPO, token_file=hub_token_file
    )
    assert result.returncode == 0, f"the repair should succeed: {result.stderr}"
    assert file_gets(fake_hub, mark) == [("vocab.txt", 200)]
    repaired = verify(damaged, SPEC)  # the manifest's entry, each of its files checked on disk
    vocab = CachedFile("vocab.txt", (model_dir / "vocab.txt").stat().st_size)
    assert (repaired.commit, vocab in repaired.files) == (fake_hub.commit_of(PUBLIC_REPO), True), (
        f"expected the Hub's commit and {vocab} in the manifest, got {repaired}"
    )
