"""roles/model_cache refuses to format data, and refuses a missing or malformed key."""

import json

import pytest
import yaml
from conftest import REPORTS, guard_log


@pytest.mark.parametrize(
    ("case", "found"),
    [("swap", "it holds a swap signature"), ("data", "it holds data (its first MiB is not zeros)")],
)
def test_refuses_to_format_a_file_that_holds_something(guards, case, found):
    assert guards["runs"][case] != 0, f"the role did not fail on the {case} file"
    failures = [line for line in guard_log(case).splitlines() if "Refusing to format" in line]
    assert failures, f"the {case} run did not refuse to format"
    assert found in failures[-1], f"the failure does not say {found!r}: {failures[-1]}"


@pytest.mark.parametrize("case", ["swap", "data"])
def test_refused_file_is_unchanged(guards, case):
    assert guards["after"][case] == guards["before"][case], f"the {case} file was modified"


def test_refused_runs_left_no_mount_unit_or_mount_point(guards):
    assert guards["leftovers"] == [], f"left behind: {guards['leftovers']}"


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing-key", "model_cache_key is not set"),
        ("malformed-key", "model_cache_key is malformed"),
    ],
)
def test_bad_key_fails_preflight_saying_how_to_make_one(guards, case, problem):
    assert guards["runs"][case] != 0, f"the role accepted a {case}"
    log = guard_log(case)
    assert problem in log, f"the failure does not say {problem!r}"
    assert "head -c 32 /dev/urandom | base64" in log, "the failure does not say how to make a key"


def _errors(case: str) -> list[str]:
    """The run's failure lines (ansible-core prints them as `[ERROR]: ...`)."""
    return [line for line in guard_log(case).splitlines() if line.startswith("[ERROR]:")]


def test_a_key_the_cache_is_not_protected_with_stops_the_role(guards):
    assert guards["runs"]["wrong-key"] != 0, "the role accepted a key that protects nothing"
    said = " ".join(guard_log("wrong-key").split())
    assert "is protected by nica-model-cache-" in said and (
        "none of which wraps model_cache_key." in said
    ), f"the failure does not name the protectors and model_cache_key: {_errors('wrong-key')}"
    assert 'README, "Losing the key"' in said, "the failure does not point to the README"


def test_the_wrong_key_is_not_printed(guards):
    wrong_key = str(
        yaml.safe_load((REPORTS / "guard-wrong-key.yml").read_text())["model_cache_key"]
    )
    assert len(wrong_key) == 44, "guard-wrong-key.yml holds no key"
    assert wrong_key not in guard_log("wrong-key"), "the wrong key is in the -vvv output"


def test_a_plain_hf_cache_volume_is_refused_naming_the_way_out(guards):
    assert guards["runs"]["plain-volume"] != 0, "the backend role accepted a plain hf-cache volume"
    said = " ".join(guard_log("plain-volume").split())
    assert "The Docker volume nica-guard-plain exists with options {}, not" in said, _errors(
        "plain-volume"
    )
    assert 'README, "Moving an existing model cache onto the encrypted volume"' in said


def test_the_plain_volume_was_left_as_it_was():
    volume = json.loads((REPORTS / "guard-plain-volume.json").read_text())
    assert volume["exists"] and not volume["options"], f"the plain volume was changed: {volume}"
