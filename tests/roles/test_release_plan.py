"""The plan of a cut-over (roles/backend_common/filter_plugins/release_plan.py): which slot
a release goes to, whether it is prepared, each slot's release afterwards. The roles
receive this one dict and read nothing else about slots."""

from __future__ import annotations

from typing import Any

import pytest

from .loader import REPO, load

plans = load("release_plan", REPO / "roles/backend_common/filter_plugins/release_plan.py")


def record(release: str) -> dict[str, str]:
    return {
        "release": release,
        "image": f"nica-pro-backend:{release.split('.')[0]}",
        "memory_limit": "2g",
        "cpus": "2",
    }


OLD, NEW, PREVIOUS = (
    record("1.0.0-aaa.11111111"),
    record("1.0.0-bbb.22222222"),
    record("0.9.0-ccc.33333333"),
)
SERVING_BLUE: dict[str, Any] = {
    "release": OLD["release"],
    "image": OLD["image"],
    "slot": "blue",
    "fingerprint": "fp-old",
    "previous_release": PREVIOUS["release"],
    "slots": {"blue": OLD, "green": PREVIOUS},
}


def test_the_first_deploy_goes_to_blue_and_is_prepared() -> None:
    plan = plans.release_plan({}, NEW, "fp-new")
    assert (plan["serving_slot"], plan["target_slot"], plan["is_new"], plan["needs_prepare"]) == (
        "",
        "blue",
        True,
        True,
    )
    assert plan["slots"] == {"blue": NEW, "green": NEW}, (
        "both slots need a release for compose's .env"
    )
    assert (plan["from"], plan["to"]) == ("", NEW["release"])


def test_a_new_release_goes_to_the_idle_slot_and_the_serving_one_keeps_its_release() -> None:
    plan = plans.release_plan(SERVING_BLUE, NEW, "fp-new")
    assert (plan["serving_slot"], plan["target_slot"], plan["is_new"]) == ("blue", "green", True)
    assert plan["slots"] == {"blue": OLD, "green": NEW}
    assert (plan["from"], plan["to"]) == (OLD["release"], NEW["release"])
    green = plans.release_plan({**SERVING_BLUE, "slot": "green"}, NEW, "fp-new")
    assert green["target_slot"] == "blue"


def test_the_serving_release_again_is_prepared_only_when_its_fingerprint_changed() -> None:
    same = plans.release_plan(SERVING_BLUE, OLD, "fp-old")
    assert (same["is_new"], same["needs_prepare"], same["target_slot"]) == (False, False, "blue")
    assert same["slots"] == SERVING_BLUE["slots"]
    assert plans.release_plan(SERVING_BLUE, OLD, "fp-token-changed")["needs_prepare"]
    assert plans.release_plan(SERVING_BLUE, OLD, "fp-old", force_prepare=True)["needs_prepare"]


def test_a_record_from_before_the_slots_names_none_and_both_slots_get_the_release() -> None:
    plan = plans.release_plan({"image": "nica-pro-backend:0.1", "slot": "blue"}, NEW, "fp")
    assert plan["from"] == "nica-pro-backend:0.1"
    assert plan["slots"] == {"blue": NEW, "green": NEW}


def test_a_rollback_goes_to_the_idle_slot_with_the_previous_release() -> None:
    plan = plans.rollback_plan(SERVING_BLUE, PREVIOUS)
    assert (plan["serving_slot"], plan["target_slot"], plan["is_new"], plan["needs_prepare"]) == (
        "blue",
        "green",
        True,
        False,
    )
    assert plan["slots"] == {"blue": OLD, "green": PREVIOUS}
    assert (plan["from"], plan["to"], plan["fingerprint"]) == (
        OLD["release"],
        PREVIOUS["release"],
        "rolled-back",
    )


@pytest.mark.parametrize("bad", [None, {}, {"release": "x"}, "1.0.0"])
def test_a_release_that_is_not_a_record_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(plans.PlanError, match=r"^release must be a release record"):
        plans.release_plan({}, bad, "fp")


def test_a_rollback_without_a_serving_slot_is_refused() -> None:
    with pytest.raises(plans.PlanError, match="names no serving slot"):
        plans.rollback_plan({"release": OLD["release"]}, PREVIOUS)
