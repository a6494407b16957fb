"""Filters that turn the host's release record into the plan of a cut-over.

Written once here, in Python with unit tests (tests/roles/test_release_plan.py), rather
than as set_fact expressions spread over task files: the roles receive the plan as one
dict (`cutover_plan`) and read nothing else about which slot serves or comes next.

  state | release_plan(release, fingerprint, force_prepare)   a deploy of `release`
  state | rollback_plan(previous)                               a rollback to `previous`

`state` is state/release.json as read from the host ({} before the first deploy): release,
image, slot, fingerprint, slots (each slot's release record), previous_*. A release record
is {release, image, memory_limit, cpus}. Both plans hold the same keys:

  release        the record that serves once the plan is carried out
  from, to       the release serving before and after (release ids; '' for none)
  serving_slot   the slot serving now ('' before the first deploy)
  target_slot    the slot the release runs in: the idle one for a new release
  is_new         a cut-over happens (the release differs from the serving one)
  needs_prepare  its migrations and prefetch run first (deploy only: a new release, a
                 change of token or database image, or force_prepare)
  slots          each slot's release after the cut-over (the compose .env's slot map)
  fingerprint    recorded with the release: the next deploy compares against it
  state          the record it was made from
"""

from __future__ import annotations

from typing import Any

SLOTS = ("blue", "green")


class PlanError(ValueError):
    """The record cannot be planned from; the message says why."""


def other(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def _check_record(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not record.get("release") or not record.get("image"):
        raise PlanError(
            f"{what} must be a release record with `release` and `image`, got {record!r}"
        )
    return record


def _slots(state: dict[str, Any], release: dict[str, Any], target: str) -> dict[str, Any]:
    # A record from before the slots existed names none: both slots start with the release.
    slots = dict(state.get("slots") or {slot: release for slot in SLOTS})
    slots[target] = release
    return slots


def release_plan(
    state: Any, release: Any, fingerprint: str, force_prepare: bool = False
) -> dict[str, Any]:
    state = state or {}
    release = _check_record(release, "release")
    serving = str(state.get("slot") or "")
    is_new = state.get("release", "") != release["release"]
    target = (other(serving) if serving else "blue") if is_new else serving
    return {
        "release": release,
        "from": state.get("release", state.get("image", "")),
        "to": release["release"],
        "serving_slot": serving,
        "target_slot": target,
        "is_new": is_new,
        "needs_prepare": bool(force_prepare) or state.get("fingerprint", "") != fingerprint,
        "slots": _slots(state, release, target),
        "fingerprint": fingerprint,
        "state": state,
    }


def rollback_plan(state: Any, previous: Any) -> dict[str, Any]:
    state = state or {}
    previous = _check_record(previous, "the previous release")
    serving = str(state.get("slot") or "")
    if serving not in SLOTS:
        raise PlanError(f"the record names no serving slot: {state!r}")
    target = other(serving)
    return {
        "release": previous,
        "from": state.get("release", ""),
        "to": previous["release"],
        "serving_slot": serving,
        "target_slot": target,
        "is_new": True,
        "needs_prepare": False,
        "slots": _slots(state, previous, target),
        # Not the fingerprint of any deploy: the next deploy.yml prepares the checked-out
        # release again (migrations are idempotent) before it serves.
        "fingerprint": "rolled-back",
        "state": state,
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"release_plan": release_plan, "rollback_plan": rollback_plan}
