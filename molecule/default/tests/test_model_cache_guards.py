"""roles/model_cache refuses to format data, and refuses a missing or malformed key."""

import pytest
from conftest import guard_log


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
