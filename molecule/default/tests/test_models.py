"""The model cache: what the prefetch put in hf-cache, and what the Hub saw."""

import json

import pytest
from conftest import sha256

# What each deployed repo's snapshot holds to run on: the public test repo ships the model's
# ONNX file (ONNX Runtime), the private one does not (the NumPy BERT, on the safetensors).
WEIGHTS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("onnx/model.onnx", "onnxruntime"),
    "nica/private-minilm": ("model.safetensors", "numpy"),
}
ONNX = "/srv/hub-data/all-MiniLM-L6-v2-onnx/onnx/model.onnx"
SAFETENSORS = "/srv/hub-data/all-MiniLM-L6-v2/model.safetensors"


@pytest.fixture()
def manifest(host, cache_dir):
    return json.loads(host.file(f"{cache_dir}/prefetch-manifest.json").content_string)["models"]


def test_every_model_is_cached_at_the_commit_the_hub_served(
    host, manifest, cache_dir, repo_ids, hub_commits
):
    for repo in repo_ids:
        commit = hub_commits[repo]
        assert manifest[repo]["commit"] == commit, (
            f"{repo} cached at {manifest[repo]['commit']}, hub has {commit}"
        )
        org, name = repo.split("/")
        file, _ = WEIGHTS[repo]
        weights = host.file(f"{cache_dir}/hub/models--{org}--{name}/snapshots/{commit}/{file}")
        reference = host.file(ONNX if file.endswith(".onnx") else SAFETENSORS)
        assert weights.exists, f"{repo}: {file} missing from the snapshot"
        assert weights.sha256sum == reference.sha256sum, f"{repo}: {file} is not the Hub's"


def test_the_cache_belongs_to_appuser(host, cache_dir):
    assert host.file(cache_dir).uid == 10001, "hf-cache must be writable by appuser"


def test_the_hub_received_the_token_for_the_private_repo(hub_log):
    private = [r for r in hub_log if "nica/private-minilm" in r["path"]]
    assert private, "the private repo was never requested"
    assert any(r["auth"] == "valid" and r["status"] == 200 for r in private), (
        "no request for the private repo carried the valid token"
    )


def test_the_hub_log_never_holds_the_token(host, token):
    assert token not in host.file("/var/log/fake-hub/requests.jsonl").content_string


def test_v1_models_lists_the_cached_models(http_get, manifest, repo_ids):
    status, body = http_get("http://127.0.0.1:8000/v1/models")
    assert status == 200
    listed = {m["id"]: m["commit"] for m in body["data"]}
    assert listed == {repo: manifest[repo]["commit"] for repo in repo_ids}
    runtimes = {m["id"]: m["runtime"] for m in body["data"]}
    assert runtimes == {repo: WEIGHTS[repo][1] for repo in repo_ids}, (
        f"each model should run where its snapshot has the files for: {runtimes}"
    )


def test_token_file_hash_matches_the_inventory(host, token):
    # The deploy restored the right token after the wrong-token attempt.
    secret = host.file("/opt/nica/compose/secrets/huggingface_token").content_string
    assert sha256(secret) == sha256(token)


def test_a_pinned_revision_is_recorded_with_its_commit(manifest, hub_commits):
    entry = manifest["nica/private-minilm"]
    assert entry["revision"] == "v1.0", f"pinned at v1.0, manifest says {entry['revision']!r}"
    assert entry["commit"] == hub_commits["nica/private-minilm"]


def test_only_the_needed_files_were_fetched(manifest, hub_log):
    # The public repo holds safetensors, pytorch_model.bin, onnx/model.onnx and another ONNX
    # variant: the prefetch fetches what ONNX Runtime runs (the setting's file) and no more.
    public = "sentence-transformers/all-MiniLM-L6-v2"
    files = {f["path"] for f in manifest[public]["files"]}
    assert "onnx/model.onnx" in files, f"the ONNX file was not fetched: {sorted(files)}"
    unwanted = {"pytorch_model.bin", "onnx/model_O4.onnx", "model.safetensors"} & files
    assert not unwanted, f"the prefetch fetched {sorted(unwanted)} besides the ONNX file"
    public_weights = f"/{public}/resolve/"

    def skipped(path: str) -> bool:
        if "pytorch_model.bin" in path or "model_O4.onnx" in path:
            return True
        return path.startswith(public_weights) and path.endswith("/model.safetensors")

    asked = [r["path"] for r in hub_log if r["method"] == "GET" and skipped(r["path"])]
    assert asked == [], f"the Hub was asked for skipped files: {asked[:3]}"


def test_cached_models_survive_without_a_download(host, hub_log, hub_commits):
    # Files of the deployed commits only, since the first story: test_prefetch_interrupted
    # adds a repo for a while and test_corrupt_onnx a commit of its own, both downloaded on
    # purpose.
    start = int(host.file("/var/log/fake-hub/side-effect-start").content_string)
    deployed = tuple(f"/{repo}/resolve/{commit}/" for repo, commit in hub_commits.items())
    downloads = [
        r for r in hub_log[start:] if r["method"] == "GET" and r["path"].startswith(deployed)
    ]
    assert downloads == [], f"the redeploys downloaded model files again: {downloads[:3]}"
