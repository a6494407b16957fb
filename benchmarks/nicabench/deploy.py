"""Deploy wall times (cold, no change, code change) and the runtime image's size vs its base."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from . import host
from .options import REPO, Options

NEXT = REPO / "build" / "next-releases" / "bench-code-change"
LOCAL_VARS = REPO / "inventory" / "local" / "group_vars" / "backend" / "main.yml"


def code_change_checkout(mark: str) -> Path:
    """A copy of the checkout with a harmless change to the backend's code (a comment), as
    molecule/default/tasks/next_releases.yml makes its next releases: new code, a new image."""
    subprocess.run(["rm", "-rf", str(NEXT)], check=True)
    NEXT.mkdir(parents=True)
    copy = (
        f"tar -C {shlex.quote(str(REPO))} --exclude=./build --exclude=./.venv --exclude=./.git "
        f"-c . | tar -C {shlex.quote(str(NEXT))} -x"
    )
    subprocess.run(["bash", "-c", "set -o pipefail; " + copy], check=True)
    (NEXT / "build").symlink_to(REPO / "build")
    init = NEXT / "backend" / "src" / "__init__.py"
    init.write_text(init.read_text() + f"# benchmark code change {mark}\n")
    return NEXT


def measure(options: Options, log_dir: Path) -> dict[str, Any]:
    deploy_yml = str(REPO / "deploy.yml")
    figures: dict[str, Any] = {"cold_s": None}
    if options.cold:
        host.say("deploy: a bare demo host (molecule destroy, create)")
        host.molecule("destroy")
        host.molecule("create")
        host.say("deploy: cold deploy")
        figures["cold_s"] = host.timed_playbook([deploy_yml], "cold deploy", log_dir)
    host.say("deploy: no-change deploy")
    figures["no_change_s"] = host.timed_playbook([deploy_yml], "no-change deploy", log_dir)
    next_dir = code_change_checkout(time.strftime("%Y%m%dT%H%M%S"))
    host.say("deploy: code-change redeploy")
    figures["code_change_s"] = host.timed_playbook(
        ["-e", f"backend_project_dir={next_dir}", deploy_yml], "code-change redeploy", log_dir
    )
    return {key: None if value is None else round(value, 1) for key, value in figures.items()}


def base_image_name() -> str:
    for line in LOCAL_VARS.read_text().splitlines():
        if line.startswith("backend_base_image:"):
            return line.split(":", 1)[1].strip()
    raise host.HostError(f"no backend_base_image in {LOCAL_VARS}")


def image_size(options: Options) -> dict[str, Any]:
    image = str(host.release(options.host)["image"])
    base = base_image_name()
    out = host.in_host(
        options.host,
        f"docker image inspect -f '{{{{ .Size }}}}' {shlex.quote(image)} {shlex.quote(base)}",
        "docker image inspect",
    ).split()
    image_mb, base_mb = (int(value) / 1e6 for value in out)
    return {
        "image": image,
        "image_mb": round(image_mb, 1),
        "base_image": base,
        "base_mb": round(base_mb, 1),
        "delta_mb": round(image_mb - base_mb, 1),
    }
