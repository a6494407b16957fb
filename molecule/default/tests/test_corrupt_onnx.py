"""The public repo's next commit carries a corrupt onnx/model.onnx (the real file cut to 1 MB):
a deploy with a configuration change (a new release, so a prefetch) fails naming the file, and
the serving release keeps serving, its record and its vectors as before (issue 25). The local
Hub serves the public repo from its usual folder again afterwards, whatever happens."""

from __future__ import annotations

from typing import Any

import pytest
from runs import Run, deploy, http, record, sh, vars_file

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDINGS = "http://127.0.0.1:8000/v1/embeddings"
UNIT = "/etc/systemd/system/fake-hf-hub.service"
GOOD, BAD = "/srv/hub-extra/minilm", "/srv/hub-corrupt"  # prepare.yml's public repo, and its copy
ONNX = "/srv/hub-data/all-MiniLM-L6-v2-onnx/onnx/model.onnx"  # scripts/lib/bootstrap.sh's export
ERROR = (
    f"error: prefetch of {MODEL}@main failed: onnx/model.onnx cannot be loaded by ONNX Runtime: "
    "Protobuf parsing failed."
)


def serve_public_repo_from(host: Any, folder: str) -> None:
    sh(
        host,
        f"sed -i 's|{MODEL}=[^ ]*|{MODEL}={folder}|' {UNIT} && systemctl daemon-reload "
        "&& systemctl restart fake-hf-hub && sleep 2 && systemctl is-active fake-hf-hub",
    )


@pytest.fixture(scope="module")
def attempt(host: Any) -> dict[str, Any]:
    before = (record(host), http(host, EMBEDDINGS, {"model": MODEL, "input": "x"}))
    sh(
        host,
        f"rm -rf {BAD} && cp -rs {GOOD}/. {BAD}/ && rm {BAD}/onnx/model.onnx "
        f"&& head -c 1000000 {ONNX} > {BAD}/onnx/model.onnx",
    )
    serve_public_repo_from(host, BAD)
    try:
        change = vars_file("corrupt-onnx", {"backend_extra_env": {"EMBEDDINGS_MAX_INPUTS": "63"}})
        run = deploy("corrupt-onnx-deploy", "-e", change)
    finally:
        serve_public_repo_from(host, GOOD)
    after = (record(host), http(host, EMBEDDINGS, {"model": MODEL, "input": "x"}))
    return {"run": run, "before": before, "after": after}


def test_a_corrupt_onnx_file_stops_the_deploy_naming_it(attempt: dict[str, Any]) -> None:
    run: Run = attempt["run"]
    assert run.rc != 0, f"a release whose ONNX file is corrupt must not roll out: {run}"
    assert ERROR in run.output, f"the deploy should say which file and why: {run}"


def test_the_serving_release_keeps_its_record_and_its_vectors(attempt: dict[str, Any]) -> None:
    (record_before, answer_before), (record_after, answer_after) = (
        attempt["before"],
        attempt["after"],
    )
    assert record_after == record_before, "state/release.json should not change"
    assert answer_after[0] == 200, f"the serving release should answer: {answer_after}"
    assert answer_after == answer_before, "the serving release should give the same vectors"
