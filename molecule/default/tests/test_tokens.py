"""A deploy with a wrong Hugging Face token, then one with none (-vvv --diff): each fails
at the private repo with one line that names the problem, prints no token, and leaves the
serving release serving, its configuration byte for byte. (The next story's redeploy puts
the inventory's token back; test_models checks the secret file at the end.)"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from runs import Run, deploy, http, inspect, serving, sh, vars_file

# The serving release's configuration: the compose .env, the proxy's upstream, the record
# and the serving release's stack.env.
CONFIG = (
    "cd /opt/nica && sha256sum compose/.env compose/proxy/live/upstream.conf state/release.json"
    " \"releases/$(python3 -c 'import json;"
    ' print(json.load(open("state/release.json"))["release"])\')/stack.env"'
)
WRONG_TOKEN = f"hf_wrongToken{secrets.token_hex(6)}deadbeef"


def snapshot(host: Any) -> dict[str, Any]:
    container = inspect(host, serving(host))
    return {
        "id": container["Id"],
        "started": container["State"]["StartedAt"],
        "image": container["Config"]["Image"],
        "config": sh(host, CONFIG).splitlines(),
    }


@pytest.fixture(scope="module")
def attempts(host: Any) -> dict[str, Any]:
    before = snapshot(host)
    runs: dict[str, Run] = {}
    for name, token in [("wrong-token", WRONG_TOKEN), ("no-token", "")]:
        token_file = vars_file(name, {"backend_huggingface_token": token})
        runs[name] = deploy(f"{name}-deploy", "-vvv", "--diff", "-e", token_file)
    readyz, _ = http(host, "http://127.0.0.1:8000/readyz")
    return {"runs": runs, "before": before, "after": snapshot(host), "readyz": readyz}


def failures(run: Run) -> list[str]:
    return [line for line in run.output.splitlines() if "was not rolled out" in line]


def test_a_deploy_with_a_wrong_token_fails_naming_the_token_problem(attempts):
    run = attempts["runs"]["wrong-token"]
    assert run.rc != 0, f"a deploy with a wrong token must fail: {run}"
    assert failures(run), f"the failed deploy did not say the release was not rolled out: {run}"
    assert any("token was rejected" in line for line in failures(run)), (
        f"the failure does not name the token problem: {failures(run)[-1][:300]}"
    )


def test_a_deploy_without_a_token_fails_naming_the_private_repo(attempts):
    run = attempts["runs"]["no-token"]
    assert run.rc != 0, f"a deploy with no token must fail at the private repo: {run}"
    assert any(
        "prefetch of nica/private-minilm@v1.0 failed" in line and "no token was given" in line
        for line in failures(run)
    ), f"the failure does not name the repo and the missing token: {failures(run)[-1:]}"


@pytest.mark.parametrize("case", ["wrong-token", "no-token"])
def test_no_token_in_verbose_diff_output(attempts, case, token):
    output = attempts["runs"][case].output
    assert WRONG_TOKEN not in output, (
        f"the wrong token appears in the {case} run's -vvv --diff output"
    )
    assert token not in output, (
        f"the inventory's token appears in the {case} run's -vvv --diff output"
    )


def test_failed_deploys_left_the_previous_release_serving(attempts):
    before, after = attempts["before"], attempts["after"]
    assert after["id"] == before["id"], "the serving container was replaced by a failed deploy"
    assert after["started"] == before["started"], (
        "the serving container was restarted by a failed deploy"
    )
    assert after["image"] == before["image"], (
        f"the serving container runs {after['image']} after the failed deploys,"
        f" expected {before['image']}"
    )
    assert attempts["readyz"] == 200, "the backend was not ready after the failed deploys"


def test_failed_prepares_left_the_serving_configuration_byte_for_byte(attempts):
    before, after = attempts["before"]["config"], attempts["after"]["config"]
    assert len(before) == 4, before
    assert after == before, (
        "a failed prepare changed .env, the proxy's upstream, the record or the serving stack.env"
    )
