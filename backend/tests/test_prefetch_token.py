"""Where the prefetch's token comes from: the secret file, else (missing or empty)
HUGGINGFACE_HUB_TOKEN; never HF_TOKEN from the environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from src.prefetch_cli import read_token
from tests.support.fake_hub import PRIVATE_REPO, FakeHub
from tests.support.runners import PREFETCH_CODE, base_env, run_python

WRONG_TOKEN = "hf_wrong_token_from_the_environment_1"


def prefetch_private(
    hub: FakeHub, hf_home: Path, token_file: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """The private repo, config.json only (the token, not the download, is under test)."""
    return run_python(
        ["-c", PREFETCH_CODE],
        base_env(
            HF_ENDPOINT=hub.url,
            HF_HOME=str(hf_home),
            HF_TOKEN_FILE=str(token_file),
            HF_MODEL_REPOS=PRIVATE_REPO,
            HF_ALLOW_PATTERNS="config.json",
            **env,
        ),
    )


def auth_seen(hub: FakeHub, mark: int) -> set[str]:
    return {str(r["auth"]) for r in hub.requests_since(mark) if PRIVATE_REPO in str(r["path"])}


def test_secret_file_wins_over_a_wrong_hf_token(
    fake_hub: FakeHub, tmp_path: Path, hub_token_file: Path
) -> None:
    result = prefetch_private(
        fake_hub,
        tmp_path,
        hub_token_file,
        HF_TOKEN=WRONG_TOKEN,
        HUGGING_FACE_HUB_TOKEN=WRONG_TOKEN,
        HUGGINGFACE_HUB_TOKEN=WRONG_TOKEN,
    )
    assert result.returncode == 0, f"the secret file's token should be used: {result.stderr}"


def test_only_the_secret_file_token_is_sent(
    fake_hub: FakeHub, tmp_path: Path, hub_token_file: Path
) -> None:
    mark = fake_hub.log_mark()
    prefetch_private(fake_hub, tmp_path, hub_token_file, HF_TOKEN=WRONG_TOKEN)
    assert auth_seen(fake_hub, mark) == {"valid"}, "every request should carry the file's token"


def test_hf_token_in_env_is_never_used(fake_hub: FakeHub, tmp_path: Path) -> None:
    mark = fake_hub.log_mark()
    result = prefetch_private(
        fake_hub,
        tmp_path,
        tmp_path / "no-such-token-file",
        HF_TOKEN=fake_hub.token,
        HUGGING_FACE_HUB_TOKEN=fake_hub.token,
    )
    assert result.returncode == 1, "HF_TOKEN / HUGGING_FACE_HUB_TOKEN must not be used"
    assert auth_seen(fake_hub, mark) == {"none"}, "requests should be anonymous"


def test_huggingface_hub_token_is_the_fallback_without_a_secret_file(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    result = prefetch_private(
        fake_hub,
        tmp_path,
        tmp_path / "no-such-token-file",
        HUGGINGFACE_HUB_TOKEN=fake_hub.token,
    )
    assert result.returncode == 0, f"HUGGINGFACE_HUB_TOKEN should be used: {result.stderr}"


def test_huggingface_hub_token_is_ignored_when_the_secret_file_exists(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_wrong_token_in_the_secret_file_2\n")
    result = prefetch_private(
        fake_hub, tmp_path / "home", token_file, HUGGINGFACE_HUB_TOKEN=fake_hub.token
    )
    assert result.stderr.splitlines() == [
        f"error: prefetch of {PRIVATE_REPO}@main failed: the Hugging Face token was rejected "
        f"(HTTP 401); put a valid token in {token_file}"
    ]


def test_huggingface_hub_token_is_the_fallback_for_an_empty_secret_file(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")  # the guide's file, left empty
    result = prefetch_private(
        fake_hub, tmp_path / "home", token_file, HUGGINGFACE_HUB_TOKEN=fake_hub.token
    )
    assert result.returncode == 0, f"HUGGINGFACE_HUB_TOKEN should be used: {result.stderr}"


@pytest.mark.parametrize(
    ("file_content", "env_token", "expected"),
    [
        ("hf_from_file\n", "hf_from_env", "hf_from_file"),  # a token in the file wins
        ("", "hf_from_env", "hf_from_env"),  # an empty file falls back to the variable
        (" \n", "hf_from_env", "hf_from_env"),  # so does one with only whitespace
        (None, "hf_from_env", "hf_from_env"),  # as does a missing file
        ("", "", None),  # neither: anonymous
        (None, "", None),
    ],
)
def test_read_token_file_or_variable(
    tmp_path: Path, file_content: str | None, env_token: str, expected: str | None
) -> None:
    token_file = tmp_path / "huggingface_token"
    if file_content is not None:
        token_file.write_text(file_content)
    env = {"HF_TOKEN_FILE": str(token_file), "HUGGINGFACE_HUB_TOKEN": env_token}
    assert read_token(env) == expected, f"file {file_content!r}, variable {env_token!r}"
