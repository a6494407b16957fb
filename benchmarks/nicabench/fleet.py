"""A fleet deploy (two backend hosts and a database host) against a one-host deploy, measured
the same way: the hosts of molecule's `fleet` scenario (Debian 13 systemd hosts with their own
engines), reached over SSH as the deploy user with sudo, bare before each cold deploy.

1. bare hosts (molecule destroy, create, prepare of `fleet`): a cold one-host deploy of
   deploy.yml on the first backend host alone (an inventory of that host in `backend` and no
   `database` group: its own PostgreSQL, as the default shape), the same again (nothing
   changed: the fast path), then a code-change redeploy;
2. bare hosts again: the same three deploys of the fleet (both backend hosts and the database
   host), the code change rolled in batches.
Each figure is the wall time of `ansible-playbook`; the one-host one is the anchor.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from . import host
from .deploy import code_change_checkout
from .options import REPO

SCENARIO = REPO / "molecule" / "fleet"
EPHEMERAL = REPO / "build" / "molecule-fleet-bench"
ONE_HOST = "nica-fleet-web-1"
IMAGE_CACHE = EPHEMERAL / "image-cache"


def molecule_env() -> dict[str, str]:
    """molecule and ansible-playbook as molecule/fleet/molecule.yml's provisioner runs them."""
    return {
        **os.environ,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(EPHEMERAL),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(EPHEMERAL / "fleet_ssh_key"),
        # Bare hosts, as a cold deploy meets them (the scenario's own come with the engine).
        "NICA_FLEET_IMAGE": "nica-test/debian13-host:latest",
    }


def bare_hosts() -> None:
    """Fresh hosts, and an empty image cache on the controller (a first fleet deploy fills it)."""
    shutil.rmtree(IMAGE_CACHE, ignore_errors=True)
    env = molecule_env()
    for step in ("destroy", "create", "prepare"):
        host.say(f"fleet: molecule {step} -s fleet")
        host.run(["molecule", step, "-s", "fleet"], f"molecule {step} -s fleet", env=env)


def one_host_inventory() -> Path:
    """The fleet scenario's inventory with only ONE_HOST, in `backend`: the one-host shape,
    over the same SSH connection (its host_vars) with the same group_vars."""
    directory = EPHEMERAL / "one-host-inventory"
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "host_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(f"backend:\n  hosts:\n    {ONE_HOST}: {{}}\n")
    (directory / "group_vars").symlink_to(SCENARIO / "inventory" / "group_vars")
    (directory / "host_vars" / f"{ONE_HOST}.yml").symlink_to(
        SCENARIO / "inventory" / "host_vars" / f"{ONE_HOST}.yml"
    )
    return directory


def timed(inventory: Path, args: list[str], what: str, log_dir: Path) -> float:
    started = time.monotonic()
    host.run(
        [
            "ansible-playbook",
            "-i",
            str(inventory),
            "-e",
            f"backend_image_cache_dir={IMAGE_CACHE}",
            *args,
            str(REPO / "deploy.yml"),
        ],
        what,
        log=log_dir / f"benchmark-fleet-{what.replace(' ', '-')}.log",
        env=molecule_env(),
    )
    return round(time.monotonic() - started, 1)


def measure(log_dir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    change = [
        "-e",
        f"backend_project_dir={code_change_checkout('fleet-' + time.strftime('%H%M%S'))}",
    ]
    bare_hosts()
    one = one_host_inventory()
    fleet = EPHEMERAL / "inventory"
    for shape, inventory in (("one_host", one), ("fleet", fleet)):
        if shape == "fleet":
            bare_hosts()
        name = shape.replace("_", "-")
        for step, args in (("cold", []), ("no_change", []), ("code_change", change)):
            what = f"{name} {step.replace('_', '-')} deploy"
            host.say(f"fleet: {what}")
            figures[f"{shape}_{step}_s"] = timed(inventory, args, what, log_dir)
    host.say("fleet: molecule destroy -s fleet")
    host.run(
        ["molecule", "destroy", "-s", "fleet"], "molecule destroy -s fleet", env=molecule_env()
    )
    return figures
