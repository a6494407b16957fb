"""ONNX Runtime where the snapshot has the model's ONNX file, the NumPy BERT otherwise.

The session's fake Hub serves the public test repo with onnx/model.onnx (exported from the
same weights, tests/data/make_onnx_model.py) and the private one without: both prefetched into
one cache, both served by one app, each by its own runtime. Then HF_ONNX_FILES (none, a
variant), corrupt ONNX files (at the prefetch, at load), the threads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from src.embeddings import EncodeError, EncoderLoadError, load
from src.embeddings.onnx_bert import check_file
from src.model_cache.manifest import load_manifest, snapshot_dir
from tests.conftest import Database
from tests.support.embeddings import MIN_COSINE, readyz_after_loading, reference_items
from tests.support.fake_hub import PRIVATE_REPO, PUBLIC_REPO, FakeHub, running_fake_hub
from tests.support.model_data import ONNX_FILE, link_repo, model_files
from tests.support.runners import PREFETCH_CODE, base_env, run_prefetch, run_python

VARIANT_REPO = "nica/minilm-onnx-variant"
VARIANT_FILE = "onnx/model_qint8_avx512.onnx"  # a stand-in: the same graph under that name
CORRUPT_REPO = "nica/minilm-corrupt-onnx"
CHANGED_REPO = "nica/minilm-changed-onnx"


def flip_weights(path: Path) -> None:
    """Flip a bit of every byte of 64 KiB at 60% of the file: inside the encoder's weights, so
    the protobuf still parses and ONNX Runtime loads it, but sentences get wrong vectors (NaN
    for some of the reference sentences, cosines near 0 for others)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.6)
    for index in range(start, start + (1 << 16)):
        data[index] ^= 0x40
    path.write_bytes(bytes(data))


def prefetch(
    hub: FakeHub, hf_home: Path, repos: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = base_env(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(hf_home),
        HF_TOKEN_FILE=str(hf_home / "no-token"),
        HF_MODEL_REPOS=repos,
        **extra,
    )
    return run_python(["-c", PREFETCH_CODE], env)


def served(client: TestClient) -> dict[str, tuple[object, object]]:
    """GET /v1/models: repo id -> (runtime, weights_file)."""
    data = client.get("/v1/models").json()["data"]
    return {model["id"]: (model["runtime"], model["weights_file"]) for model in data}


# ---- the public repo on ONNX Runtime, the private one (no onnx/) on the NumPy BERT


@pytest.fixture(scope="module")
def both_home(
    fake_hub: FakeHub, hub_token_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    hf_home = tmp_path_factory.mktemp("hf-home-both")
    result = run_prefetch(
        hub_url=fake_hub.url,
        hf_home=hf_home,
        repos=f"{PUBLIC_REPO},{PRIVATE_REPO}",
        token_file=hub_token_file,
    )
    assert result.returncode == 0, f"the prefetch should succeed: {result.stderr}"
    return hf_home


@pytest.fixture(scope="module")
def both_client(seeded_database: Database, both_home: Path) -> Iterator[TestClient]:
    """The app as src.main makes it (its own loader), serving both models."""
    settings = seeded_database.settings(both_home, models=f"{PUBLIC_REPO},{PRIVATE_REPO}")
    with TestClient(create_app(settings)) as client:
        response = readyz_after_loading(client)
        assert response.status_code == 200, f"both models should load: {response.json()}"
        yield client


def test_models_says_which_runtime_serves_each_model(both_client: TestClient) -> None:
    assert served(both_client) == {
        PUBLIC_REPO: ("onnxruntime", "onnx/model.onnx"),
        PRIVATE_REPO: ("numpy", "model.safetensors"),
    }


def test_each_snapshot_holds_only_the_weights_its_runtime_reads(both_home: Path) -> None:
    manifest = load_manifest(both_home)
    weights = {}
    for repo in (PUBLIC_REPO, PRIVATE_REPO):
        files = model_files(snapshot_dir(both_home, repo, manifest[repo].commit))
        weights[repo] = sorted(path for path in files if path.endswith((".onnx", ".safetensors")))
    assert weights == {PUBLIC_REPO: ["onnx/model.onnx"], PRIVATE_REPO: ["model.safetensors"]}


@pytest.mark.parametrize("repo", [PUBLIC_REPO, PRIVATE_REPO], ids=["onnxruntime", "numpy"])
def test_each_runtime_serves_sentence_transformers_vectors(
    both_client: TestClient, repo: str
) -> None:
    items = reference_items()
    response = both_client.post(
        "/v1/embeddings", json={"model": repo, "input": [item.text for item in items]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    vectors = np.array([entry["embedding"] for entry in body["data"]])
    reference = np.array([item.embedding for item in items])
    cosines = np.sum(vectors * reference, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    )
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, (
        f"{repo}: input {worst} has cosine {cosines[worst]:.10f} to sentence-transformers"
    )
    assert body["usage"]["prompt_tokens"] == sum(item.token_count for item in items)


# ---- HF_ONNX_FILES


@pytest.fixture(scope="module")
def variants_hub(
    model_dir: Path, onnx_model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeHub]:
    """More repos: one with onnx/model.onnx and a variant beside it; one whose onnx/model.onnx
    is the real file cut in half; one whose onnx/model.onnx changes after the hub listed it."""
    work = tmp_path_factory.mktemp("variants-hub")
    variant = link_repo(
        model_dir, work / "variant", {ONNX_FILE: onnx_model_file, VARIANT_FILE: onnx_model_file}
    )
    half = work / "half.onnx"
    half.write_bytes(onnx_model_file.read_bytes()[: onnx_model_file.stat().st_size // 2])
    corrupt = link_repo(model_dir, work / "corrupt", {ONNX_FILE: half})
    changing = work / "changing.onnx"
    shutil.copyfile(onnx_model_file, changing)
    changed = link_repo(model_dir, work / "changed", {ONNX_FILE: changing})
    repos = [f"{VARIANT_REPO}={variant}", f"{CORRUPT_REPO}={corrupt}", f"{CHANGED_REPO}={changed}"]
    with running_fake_hub(model_dir, work, extra_repos=repos) as hub:
        flip_weights(changing)  # after the hub hashed it: it serves other bytes than it lists
        yield hub


def test_none_fetches_the_safetensors_and_never_asks_for_the_onnx_file(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    mark = fake_hub.log_mark()
    result = prefetch(fake_hub, tmp_path, PUBLIC_REPO, HF_ONNX_FILES="*=none")
    assert result.returncode == 0, f"the prefetch should succeed: {result.stderr}"
    files = {f.path for f in load_manifest(tmp_path)[PUBLIC_REPO].files}
    assert "model.safetensors" in files and ONNX_FILE not in files, sorted(files)
    asked = [r["path"] for r in fake_hub.requests_since(mark) if "/onnx/" in str(r["path"])]
    assert asked == [], f"nothing under onnx/ should be requested, got {asked}"


def test_a_named_variant_is_the_one_file_fetched_and_served(
    variants_hub: FakeHub, seeded_database: Database, tmp_path: Path
) -> None:
    mark = variants_hub.log_mark()
    setting = f"{VARIANT_REPO}={VARIANT_FILE}"
    result = prefetch(variants_hub, tmp_path, VARIANT_REPO, HF_ONNX_FILES=setting)
    assert result.returncode == 0, f"the prefetch should succeed: {result.stderr}"
    assert result.stdout.strip().endswith(f"runs on ONNX Runtime ({VARIANT_FILE})"), result.stdout
    weights = {
        str(r["path"]).rsplit("/resolve/", 1)[1].split("/", 1)[1]
        for r in variants_hub.requests_since(mark)
        if r["method"] == "GET" and str(r["path"]).endswith((".onnx", ".safetensors"))
    }
    assert weights == {VARIANT_FILE}, f"only the variant should be downloaded, got {weights}"
    settings = seeded_database.settings(tmp_path, models=VARIANT_REPO, HF_ONNX_FILES=setting)
    with TestClient(create_app(settings)) as client:
        readyz_after_loading(client)
        assert served(client) == {VARIANT_REPO: ("onnxruntime", VARIANT_FILE)}


# ---- a corrupt ONNX file: the prefetch fails naming it, nothing is recorded


def test_a_corrupt_onnx_file_fails_the_prefetch_in_one_line_naming_it(
    variants_hub: FakeHub, tmp_path: Path
) -> None:
    result = prefetch(variants_hub, tmp_path, CORRUPT_REPO)
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            f"error: prefetch of {CORRUPT_REPO}@main failed: onnx/model.onnx cannot be loaded "
            "by ONNX Runtime: Protobuf parsing failed."
        ],
    )
    assert CORRUPT_REPO not in load_manifest(tmp_path), "a corrupt repo must not be recorded"


def test_onnx_bytes_other_than_the_hubs_fail_the_prefetch(
    variants_hub: FakeHub, tmp_path: Path
) -> None:
    result = prefetch(variants_hub, tmp_path, CHANGED_REPO)
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}: {result.stdout}"
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: prefetch of {CHANGED_REPO}@main failed: corrupt snapshot"), line
    assert "file onnx/model.onnx has sha256 " in line and ", the Hub lists " in line, line
    assert CHANGED_REPO not in load_manifest(tmp_path), "a corrupt repo must not be recorded"


def test_a_failed_prefetch_of_a_new_commit_leaves_the_recorded_one_serving(
    model_dir: Path,
    onnx_model_dir: Path,
    seeded_database: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same repo id, first good, then at a new commit whose onnx/model.onnx is corrupt."""
    hf_home = tmp_path_factory.mktemp("hf-home-kept")
    work = tmp_path_factory.mktemp("hub-new-commit")
    (work / "good").mkdir()
    (work / "bad").mkdir()
    with running_fake_hub(model_dir, work / "good", public_dir=onnx_model_dir) as hub:
        assert prefetch(hub, hf_home, PUBLIC_REPO).returncode == 0
    good = load_manifest(hf_home)[PUBLIC_REPO]
    half = work / "half.onnx"
    half.write_bytes((onnx_model_dir / ONNX_FILE).read_bytes()[:1_000_000])
    corrupt = link_repo(model_dir, work / "corrupt", {ONNX_FILE: half})
    with running_fake_hub(model_dir, work / "bad", public_dir=corrupt) as hub:
        failed = prefetch(hub, hf_home, PUBLIC_REPO)
        assert hub.commit_of(PUBLIC_REPO) != good.commit
    assert failed.returncode == 1, f"the corrupt commit should fail: {failed.stdout}"
    assert load_manifest(hf_home)[PUBLIC_REPO] == good, "the recorded commit should stay"
    settings = seeded_database.settings(hf_home, models=PUBLIC_REPO)
    with TestClient(create_app(settings)) as client:
        assert readyz_after_loading(client).status_code == 200
        response = client.post(
            "/v1/embeddings", json={"model": PUBLIC_REPO, "input": "still serving"}
        )
    assert response.status_code == 200, response.text


# ---- a corrupt ONNX file at load: the model never serves


@pytest.fixture(scope="module")
def flipped_home(both_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cache whose onnx/model.onnx had weights flipped after the prefetch."""
    hf_home = tmp_path_factory.mktemp("hf-home-flipped")
    shutil.copytree(both_home, hf_home, symlinks=True, dirs_exist_ok=True)
    commit = load_manifest(hf_home)[PUBLIC_REPO].commit
    weights = (snapshot_dir(hf_home, PUBLIC_REPO, commit) / ONNX_FILE).resolve()
    assert weights.is_relative_to(hf_home), f"the copy should not share {weights}"
    flip_weights(weights)
    return hf_home


def test_flipped_weights_load_in_onnx_runtime_but_give_wrong_vectors(
    flipped_home: Path,
) -> None:
    """Why the sha256 is checked: ONNX Runtime and the probe batch take this file."""
    snapshot = snapshot_dir(
        flipped_home, PUBLIC_REPO, load_manifest(flipped_home)[PUBLIC_REPO].commit
    )
    check_file(snapshot / ONNX_FILE, ONNX_FILE)  # no error
    encoder = load(snapshot, ONNX_FILE)
    with pytest.raises(EncodeError, match=r"^onnx/model.onnx \(onnxruntime\) gave NaN"):
        encoder.encode([item.text for item in reference_items()])


def test_a_model_whose_onnx_file_changed_since_the_prefetch_never_serves(
    seeded_database: Database, flipped_home: Path
) -> None:
    settings = seeded_database.settings(flipped_home, models=f"{PUBLIC_REPO},{PRIVATE_REPO}")
    with TestClient(create_app(settings)) as client:
        ready = readyz_after_loading(client)
        embedded = client.post("/v1/embeddings", json={"model": PUBLIC_REPO, "input": "x"})
        other = client.post("/v1/embeddings", json={"model": PRIVATE_REPO, "input": "x"})
    check = ready.json()["checks"]["embeddings"]
    assert ready.status_code == 503
    assert check.startswith(
        f"{PUBLIC_REPO}@main: failed to load: file onnx/model.onnx has sha256 "
    ), check
    assert "the prefetch recorded" in check and PRIVATE_REPO not in check, check
    assert embedded.status_code == 503, f"no vectors from it: {embedded.text}"
    assert other.status_code == 200, "the other model still serves"


def test_a_corrupt_onnx_file_of_an_older_manifest_fails_its_load_naming_it(
    seeded_database: Database, both_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A manifest written before the sha256 (an older release's prefetch): ONNX Runtime's
    own load is what refuses the file."""
    hf_home = tmp_path_factory.mktemp("hf-home-old-manifest")
    shutil.copytree(both_home, hf_home, symlinks=True, dirs_exist_ok=True)
    manifest_file = hf_home / "prefetch-manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for entry in manifest["models"].values():
        entry["files"] = [{"path": f["path"], "size": f["size"]} for f in entry["files"]]
    manifest_file.write_text(json.dumps(manifest))
    commit = load_manifest(hf_home)[PUBLIC_REPO].commit
    weights = (snapshot_dir(hf_home, PUBLIC_REPO, commit) / ONNX_FILE).resolve()
    with weights.open("r+b") as handle:
        handle.write(b"\xff" * 4096)
    settings = seeded_database.settings(hf_home, models=PUBLIC_REPO)
    with TestClient(create_app(settings)) as client:
        ready = readyz_after_loading(client)
        embedded = client.post("/v1/embeddings", json={"model": PUBLIC_REPO, "input": "x"})
    assert (ready.status_code, ready.json()["checks"]["embeddings"]) == (
        503,
        f"{PUBLIC_REPO}@main: failed to load: onnx/model.onnx cannot be loaded by ONNX Runtime: "
        "Protobuf parsing failed.",
    )
    assert embedded.status_code == 503, f"no vectors from it: {embedded.text}"


def test_an_onnx_graph_of_another_hidden_size_than_config_json_is_refused(
    onnx_model_dir: Path, tmp_path: Path
) -> None:
    snapshot = link_repo(onnx_model_dir, tmp_path / "snapshot")
    config = json.loads((onnx_model_dir / "config.json").read_text())
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").write_text(json.dumps({**config, "hidden_size": 768}))
    with pytest.raises(EncoderLoadError) as caught:
        load(snapshot, ONNX_FILE)
    assert str(caught.value) == (
        "onnx/model.onnx: output last_hidden_state has hidden size 384, config.json says 768"
    )


# ---- threads: each pass on `threads` intra-op threads, inter-op 1, one session


@pytest.mark.parametrize("threads", [1, 3])
def test_a_session_starts_threads_minus_one_pool_threads(
    onnx_model_file: Path, threads: int
) -> None:
    """The caller's thread runs each pass with the session's intra-op pool: `threads` - 1 more
    OS threads, and none for inter-op (1)."""
    code = (
        "import os, sys, numpy, onnxruntime\n"
        "from pathlib import Path\n"
        "from src.embeddings.onnx_bert import load_onnx\n"
        "count = lambda: len(os.listdir('/proc/self/task'))\n"
        "before = count()\n"
        "session = load_onnx(Path(sys.argv[1]), 'onnx/model.onnx', 384, int(sys.argv[2]))\n"
        "print(count() - before)\n"
    )
    result = run_python(
        ["-c", code, str(onnx_model_file), str(threads)], base_env(OPENBLAS_NUM_THREADS="1")
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == threads - 1, f"new threads: {result.stdout.strip()}"
