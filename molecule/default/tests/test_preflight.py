"""roles/backend_common refuses bad input in preflight, naming the variable (side_effect_guard.yml)."""

import pytest
import yaml
from conftest import REPORTS, guard_log


def _failures(case: str) -> list[str]:
    """The run's one-line failure reasons (ansible-core prints them as `[ERROR]: ...`)."""
    return [line for line in guard_log(case).splitlines() if line.startswith("[ERROR]:")]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "bad-repos",
            "backend_hf_model_repos: \"not a repo id\" is not 'org/name' or 'org/name@revision'",
        ),
        ("bad-port", "backend_publish_port must be a port number, 1-65535; got 70000."),
        ("bad-token", "backend_huggingface_token must be a single token with no spaces"),
    ],
)
def test_bad_backend_input_fails_naming_the_variable(guards, case, message):
    assert guards["runs"][case] != 0, f"the backend role accepted the {case} input"
    failures = _failures(case)
    assert any(message in line for line in failures), f"expected {message!r} in: {failures}"


def test_bad_token_is_not_printed(guards):
    token = str(
        yaml.safe_load((REPORTS / "guard-bad-token.yml").read_text())["backend_huggingface_token"]
    )
    log = guard_log("bad-token")
    assert token not in log, "the refused token appears in the -vvv output"
    assert token.split()[0] not in log, "part of the refused token appears in the -vvv output"


def test_refused_runs_left_the_serving_release_alone(guards):
    assert guards["serving_after"] == guards["serving_before"], (
        "a run refused in preflight replaced or restarted the serving container"
    )
