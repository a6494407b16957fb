"""The backend image roles/release built on the host."""

import json
import re


def _inspect(sh, image):
    return json.loads(sh(f"docker image inspect {image}"))[0]


def test_release_image_exists_with_its_version_tag(sh, release):
    image = release["image"]
    assert re.fullmatch(r"nica-pro-backend:1\.0\.0-[0-9a-f]{12}", image), (
        f"unexpected tag {image!r}"
    )
    assert image in _inspect(sh, image)["RepoTags"]


def test_image_runs_as_appuser(sh, release):
    config = _inspect(sh, release["image"])["Config"]
    assert config["User"] == "appuser", f"image user is {config['User']!r}, expected appuser"
    uid = sh(f"docker run --rm --entrypoint id {release['image']} -u").strip()
    assert uid == "10001", f"appuser should be UID 10001, got {uid}"


def test_token_is_not_in_the_image_history(sh, release, token):
    history = sh(f"docker history --no-trunc {release['image']}")
    assert token not in history, "the Hugging Face token leaked into an image layer"


def test_token_is_not_in_the_image_config(sh, release, token):
    image = _inspect(sh, release["image"])
    assert token not in json.dumps(image), "the Hugging Face token leaked into the image config"
    assert not any(
        e.startswith(("HF_TOKEN=", "HUGGINGFACE_HUB_TOKEN=")) for e in image["Config"]["Env"]
    )


def test_image_serves_offline_by_default(sh, release):
    env = _inspect(sh, release["image"])["Config"]["Env"]
    assert "HF_HUB_OFFLINE=1" in env
    assert "HF_HOME=/var/huggingface" in env


def test_no_api_key_is_in_the_image_history_or_config(sh, release, api_keys, rotated_api_key):
    image = sh(f"docker history --no-trunc {release['image']}") + json.dumps(
        _inspect(sh, release["image"])
    )
    leaked = [
        name for name, key in {**api_keys, "rotated": rotated_api_key}.items() if key in image
    ]
    assert leaked == [], f"the {leaked} API key is in the image's history or config"
