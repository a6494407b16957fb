"""The next release's dry run on the fleet (`deploy.yml --check --diff` with the release
that brings migration 0004): it runs to the end on all three hosts, says it would build
the image, and changes nothing on any of them."""

from __future__ import annotations

from typing import Any

import pytest
from fleet import FLEET, fingerprints
from runs import Run, deploy


@pytest.fixture(scope="module")
def story(hosts: dict[str, Any], next_compatible) -> dict[str, Any]:
    before = fingerprints(hosts)
    run = deploy("dryrun", "--check", "--diff", "-e", f"backend_project_dir={next_compatible}")
    return {"run": run, "before": before, "after": fingerprints(hosts)}


def test_the_dry_run_of_the_next_release_runs_to_the_end_on_every_host(story):
    run: Run = story["run"]
    assert run.rc == 0, f"deploy.yml --check --diff on the fleet failed: {run}"
    counts = run.recaps()
    assert sorted(counts) == sorted(FLEET), f"not every host ran: {counts}"
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    assert "would build nica-pro-backend:" in run.said(), "the dry run did not say it would build"


def test_the_dry_run_changed_nothing_on_any_host(story):
    before, after = story["before"], story["after"]
    assert all(before.values()), f"a host's fingerprint is empty: {before}"
    changed = [name for name in FLEET if after[name] != before[name]]
    assert not changed, f"deploy.yml --check --diff changed {changed}"
