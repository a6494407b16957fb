"""The prefetch, run as a subprocess exactly as the image runs it, against the fake Hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

from src.model_cache.manifest import snapshot_dir
from tests.conftest import Prefetched
from tests.support.fake_hub import PRIVATE_REPO, PUBLIC_REPO, FakeHub
from tests.support.model_data import model_files, sha256
from tests.support.net import closed_port
from tests.support.runners import run_prefetch


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def public_repo_files(onnx_model_dir: Path) -> dict[str, int]:
    """What the prefetch takes of the public repo: its files but the safetensors weights (the
    repo has onnx/model.onnx, which the encoder runs on instead)."""
    files = model_files(onnx_model_dir)
    del files["model.safetensors"]
    return files


def resolve_gets(requests: list[dict[str, object]]) -> list[object]:
    return [r["path"] for r in requests if r["method"] == "GET" and "/resolve/" in str(r["path"])]


# ---- success (the session's warm cache; HF_HUB_OFFLINE=1 is set as in the image)


def test_prints_one_line_naming_repo_commit_size_and_runtime(
    prefetched: Prefetched, fake_hub: FakeHub
) -> None:
    commit = fake_hub.commit_of(PUBLIC_REPO)
    expected = (
        f"prefetch: {PUBLIC_REPO}@main -> commit {commit}, 13 files, 91.1 MB, "
        "runs on ONNX Runtime (onnx/model.onnx)"
    )
    assert lines(prefetched.result.stdout) == [expected]
    assert prefetched.result.stderr == "", f"nothing on stderr, got: {prefetched.result.stderr}"


def test_snapshot_holds_every_file_at_its_size(
    prefetched: Prefetched, fake_hub: FakeHub, onnx_model_dir: Path
) -> None:
    snapshot = snapshot_dir(prefetched.hf_home, PUBLIC_REPO, fake_hub.commit_of(PUBLIC_REPO))
    cached = model_files(snapshot)
    assert cached == public_repo_files(onnx_model_dir), (
        "the snapshot should mirror the hub's files, the ONNX file in place of the safetensors"
    )


def test_manifest_records_the_hub_commit_and_files(
    prefetched: Prefetched, fake_hub: FakeHub, onnx_model_dir: Path
) -> None:
    manifest = json.loads((prefetched.hf_home / "prefetch-manifest.json").read_text())
    entry = manifest["models"][PUBLIC_REPO]
    assert entry["commit"] == fake_hub.commit_of(PUBLIC_REPO), "commit should be the hub's"
    assert entry["revision"] == "main"
    files = {f["path"]: f["size"] for f in entry["files"]}
    assert files == public_repo_files(onnx_model_dir), (
        "the manifest should list every file with its size"
    )
    assert entry["bytes"] == sum(files.values())


def test_manifest_records_the_sha256_of_the_weights(
    prefetched: Prefetched, onnx_model_dir: Path
) -> None:
    manifest = json.loads((prefetched.hf_home / "prefetch-manifest.json").read_text())
    hashes = {
        f["path"]: f["sha256"] for f in manifest["models"][PUBLIC_REPO]["files"] if "sha256" in f
    }
    assert hashes == {"onnx/model.onnx": sha256(onnx_model_dir / "onnx" / "model.onnx")}, (
        "the weights file (the hub's one LFS file here) should carry its sha256"
    )


def test_warm_cache_downloads_no_file(
    prefetched: Prefetched, fake_hub: FakeHub, hub_token_file: Path
) -> None:
    mark = fake_hub.log_mark()
    result = run_prefetch(
        hub_url=fake_hub.url,
        hf_home=prefetched.hf_home,
        repos=PUBLIC_REPO,
        token_file=hub_token_file,
    )
    assert result.returncode == 0, f"second prefetch should succeed: {result.stderr}"
    downloads = resolve_gets(fake_hub.requests_since(mark))
    assert downloads == [], f"a warm cache should download nothing, got GETs: {downloads}"


def test_empty_model_list_does_nothing(fake_hub: FakeHub, tmp_path: Path) -> None:
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=tmp_path, repos=" , ", token_file=tmp_path / "none"
    )
    assert (result.returncode, lines(result.stdout)) == (
        0,
        ["prefetch: HF_MODEL_REPOS is empty, nothing to do"],
    )


def test_bad_model_list_exits_2_naming_the_entry(fake_hub: FakeHub, tmp_path: Path) -> None:
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=tmp_path, repos="not-a-repo", token_file=tmp_path / "none"
    )
    assert result.returncode == 2, f"bad HF_MODEL_REPOS should exit 2, got {result.returncode}"
    assert lines(result.stderr) == [
        "error: HF_MODEL_REPOS: entry 'not-a-repo' is not of the form namespace/name[@revision]"
    ]


# ---- private repository and tokens


def test_private_repo_with_the_right_token(
    fake_hub: FakeHub, tmp_path: Path, hub_token_file: Path
) -> None:
    mark = fake_hub.log_mark()
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=tmp_path, repos=PRIVATE_REPO, token_file=hub_token_file
    )
    assert result.returncode == 0, f"prefetch with the right token should succeed: {result.stderr}"
    seen = {r["auth"] for r in fake_hub.requests_since(mark) if PRIVATE_REPO in str(r["path"])}
    assert seen == {"valid"}, f"every request for the private repo should carry the token: {seen}"


def test_private_repo_without_token_names_the_repo(fake_hub: FakeHub, tmp_path: Path) -> None:
    result = run_prefetch(
        hub_url=fake_hub.url,
        hf_home=tmp_path,
        repos=PRIVATE_REPO,
        token_file=tmp_path / "no-such-token-file",
    )
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    assert lines(result.stderr) == [
        f"error: prefetch of {PRIVATE_REPO}@main failed: repository not found, or it is private "
        f"and no token was given (HTTP 401); put a valid token in {tmp_path / 'no-such-token-file'}"
    ]


def test_wrong_token_is_reported_as_rejected(fake_hub: FakeHub, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_wrong_token_value_123456\n")
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=tmp_path / "home", repos=PRIVATE_REPO, token_file=token_file
    )
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    assert lines(result.stderr) == [
        f"error: prefetch of {PRIVATE_REPO}@main failed: the Hugging Face token was rejected "
        f"(HTTP 401); put a valid token in {token_file}"
    ]


def test_token_never_printed(fake_hub: FakeHub, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_wrong_token_value_123456\n")
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=tmp_path / "home", repos=PRIVATE_REPO, token_file=token_file
    )
    output = result.stdout + result.stderr
    assert "hf_wrong_token_value_123456" not in output, "the token must not appear in any output"
    assert fake_hub.token not in fake_hub.log_path.read_text(), "nor in the hub's request log"


# ---- other failures


def test_unknown_revision(fake_hub: FakeHub, tmp_path: Path, hub_token_file: Path) -> None:
    result = run_prefetch(
        hub_url=fake_hub.url,
        hf_home=tmp_path,
        repos=f"{PUBLIC_REPO}@v9",
        token_file=hub_token_file,
    )
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    assert lines(result.stderr) == [
        f"error: prefetch of {PUBLIC_REPO}@v9 failed: revision 'v9' not found"
    ]


def test_unreachable_hub_fails_fast_with_one_line(tmp_path: Path, hub_token_file: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = run_prefetch(
        hub_url=endpoint, hf_home=tmp_path, repos=PUBLIC_REPO, token_file=hub_token_file
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    errors = lines(result.stderr)
    assert len(errors) == 1, f"expected one error line, got: {errors}"
    prefix = f"error: prefetch of {PUBLIC_REPO}@main failed: cannot reach the Hub at {endpoint}: "
    assert errors[0].startswith(prefix), f"expected {prefix!r}..., got {errors[0]!r}"
    assert elapsed < 15, f"an unreachable hub should fail fast, took {elapsed:.1f} s"


def test_stops_at_the_first_failing_repo(
    fake_hub: FakeHub, tmp_path: Path, hub_token_file: Path
) -> None:
    result = run_prefetch(
        hub_url=fake_hub.url,
        hf_home=tmp_path,
        repos=f"{PUBLIC_REPO}@v9, {PRIVATE_REPO}",
        token_file=hub_token_file,
    )
    assert result.returncode == 1
    assert not (tmp_path / "hub" / "models--nica--private-minilm").exists(), (
        "the repo after the failing one should not be fetched"
    )
