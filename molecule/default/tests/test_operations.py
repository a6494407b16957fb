"""What the side effect did: compose down + redeploy, deploys with a wrong token and with none."""

import json

import pytest
import yaml
from conftest import REPORTS, sha256


@pytest.fixture(scope="module")
def wrong_deploy():
    return json.loads((REPORTS / "wrong-token-deploy.json").read_text())


@pytest.fixture(scope="module")
def wrong_deploy_log():
    return (REPORTS / "wrong-token-deploy.log").read_text()


@pytest.fixture(scope="module")
def no_token_log():
    return (REPORTS / "no-token-deploy.log").read_text()


@pytest.fixture(scope="module")
def wrong_token():
    return str(
        yaml.safe_load((REPORTS / "wrong-token.yml").read_text())["backend_huggingface_token"]
    )


def test_rows_survive_compose_down_and_redeploy(psql):
    rows = psql("SELECT name FROM collections WHERE name = 'side-effect-marker'")
    assert rows == [["side-effect-marker"]], "the row written before `docker compose down` is gone"


def test_compose_down_v_kept_both_volumes():
    volumes = json.loads((REPORTS / "compose-down-volumes.json").read_text())
    assert set(volumes["before"]) == {"hf-cache", "nica_pg-data"}, volumes
    assert all(volumes["before"].values()), f"a volume was missing before: {volumes['before']}"
    assert volumes["after"] == volumes["before"], (
        f"docker compose down -v removed or recreated a volume: created {volumes['before']} "
        f"before, {volumes['after']} after the redeploy"
    )


def test_cached_models_survive_without_a_download(host, hub_log, repo_ids):
    # Files of the deployed repos only: the side effect also adds a repo for a while
    # (side_effect_interrupted.yml), whose files are downloaded on purpose.
    start = int(host.file("/var/log/fake-hub/side-effect-start").content_string)
    downloads = [
        r
        for r in hub_log[start:]
        if r["method"] == "GET"
        and any(r["path"].startswith(f"/{repo}/resolve/") for repo in repo_ids)
    ]
    assert downloads == [], f"the redeploys downloaded model files again: {downloads[:3]}"


def test_wrong_token_deploy_fails(wrong_deploy):
    assert wrong_deploy["rc"] != 0, "a deploy with a wrong token must fail"


def test_wrong_token_deploy_names_the_token_problem(wrong_deploy_log):
    failures = [line for line in wrong_deploy_log.splitlines() if "was not rolled out" in line]
    assert failures, "the failed deploy did not say the release was not rolled out"
    assert any("token was rejected" in line for line in failures), (
        f"the failure does not name the token problem: {failures[-1][:300]}"
    )


def test_deploy_without_a_token_fails_naming_the_private_repo(wrong_deploy, no_token_log):
    assert wrong_deploy["no_token_rc"] != 0, "a deploy with no token must fail at the private repo"
    failures = [line for line in no_token_log.splitlines() if "was not rolled out" in line]
    assert any(
        "prefetch of nica/private-minilm@v1.0 failed" in line and "no token was given" in line
        for line in failures
    ), f"the failure does not name the repo and the missing token: {failures[-1:]}"


def test_no_token_in_the_no_token_deploy_output(no_token_log, token):
    assert token not in no_token_log, "the real token appears in the no-token deploy's output"


def test_the_wrong_token_searched_for_is_the_one_deployed(wrong_deploy, wrong_token):
    # The checks below look for wrong-token.yml's token; the side effect recorded the
    # hash of the token it deployed with.
    assert sha256(wrong_token) == wrong_deploy["wrong_token_sha256"], (
        "wrong-token.yml does not hold the token the failed deploy used"
    )
    assert wrong_token.startswith("hf_wrongToken"), "wrong-token.yml holds no wrong token"


def test_no_token_in_verbose_diff_output(wrong_deploy_log, wrong_token, token):
    assert wrong_token not in wrong_deploy_log, (
        "the wrong token appears in ansible-playbook -vvv --diff output"
    )
    assert token not in wrong_deploy_log, (
        "the real token appears in ansible-playbook -vvv --diff output"
    )


def test_failed_deploy_left_the_previous_release_serving(wrong_deploy):
    before, after = wrong_deploy["before"], wrong_deploy["after"]
    assert after["id"] == before["id"], "the serving container was replaced by a failed deploy"
    assert after["started"] == before["started"], (
        "the serving container was restarted by a failed deploy"
    )
    assert after["image"] == before["image"], (
        f"the serving container runs {after['image']} after the failed deploys, "
        f"expected {before['image']} as before"
    )
    assert wrong_deploy["readyz_after"] == 200, "the backend was not ready after the failed deploy"


def test_failed_prepares_left_the_serving_configuration_byte_for_byte(wrong_deploy):
    assert len(wrong_deploy["config_before"]) == 4, wrong_deploy["config_before"]
    assert wrong_deploy["config_after"] == wrong_deploy["config_before"], (
        "a failed prepare changed .env, the proxy's upstream, the record or the serving stack.env"
    )


def test_rollback_serves_the_previous_release():
    first = json.loads((REPORTS / "first-release.json").read_text())
    after = json.loads((REPORTS / "after-rollback.json").read_text())
    record = after["record"]
    assert record["release"] == first["release"], (
        "after the rollback the first release should be recorded"
    )
    assert record["previous_image"] not in ("", first["image"]), (
        "the rolled-back release should be kept"
    )
    assert after["serving_image"] == first["image"], (
        f"serving {after['serving_image']}, expected the first release {first['image']}"
    )


def test_status_after_the_rollback_reports_the_first_release_ready():
    first = json.loads((REPORTS / "first-release.json").read_text())
    after = json.loads((REPORTS / "after-rollback.json").read_text())
    text = " ".join((REPORTS / "status-after-rollback.log").read_text().split())
    assert after["status_rc"] == 0, f"status.yml failed after the rollback: {text[-3000:]}"
    assert f"release: {first['release']} ({first['image']})" in text, (
        f"status.yml does not report the first release {first['release']}: {text[-3000:]}"
    )
    assert "readyz: 200" in text and "record: matches what runs" in text, text[-3000:]


def test_the_serving_and_previous_release_stay_on_the_host(sh, release):
    for image in (release["image"], release["previous_image"]):
        assert sh(f"docker image ls -q {image}").strip(), f"{image} is gone from the host"


def test_old_releases_are_pruned_with_their_images(sh, release):
    keep = 3  # roles/backend_common's backend_keep_releases
    listing = sh("ls -t /opt/nica/releases").split()
    pinned = {release["release"], release["previous_release"]} | {
        slot["release"] for slot in release["slots"].values()
    }
    beyond = [name for name in listing[keep:] if name not in pinned]
    assert not beyond, f"releases beyond the last {keep} were kept: {beyond}"
    kept_tags = {name.rsplit(".", 1)[0] for name in listing}
    images = sh("docker image ls --format '{{.Tag}}' nica-pro-backend").split()
    stray = sorted(set(images) - kept_tags)
    assert not stray, f"images of pruned releases are still on the host: {stray}"
