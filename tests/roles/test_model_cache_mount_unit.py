"""roles/model_cache's mount unit: a block device is mounted as one, an image file by loop.

The Molecule host cannot mount a device through systemd (it runs no udev, so systemd never
sees a device unit appear), so model_cache_device is checked here, on the unit the role
writes: the role's own template and its own rule for what the filesystem lives on.
"""

from __future__ import annotations

import posixpath
from typing import Any

import jinja2
import pytest
import yaml

from tests.roles.loader import REPO

ROLE = REPO / "roles" / "model_cache"
IMAGE_FILE = "/var/lib/nica/model-cache.img"
MOUNT_POINT = "/srv/nica-model-cache"


def mount_unit(device: str) -> dict[str, dict[str, str]]:
    """The unit the role writes for this model_cache_device, as {section: {key: value}}."""
    variables: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "model_cache_device": device,
        "model_cache_image_file": IMAGE_FILE,
        "model_cache_mount_point": MOUNT_POINT,
    }
    # A systemd unit, not HTML: no autoescape, as in Ansible.
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    environment.filters["dirname"] = posixpath.dirname  # Ansible's filter of that name
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    variables["__model_cache_backing"] = environment.from_string(
        role_vars["__model_cache_backing"]
    ).render(variables)
    text = environment.from_string((ROLE / "templates" / "model-cache.mount.j2").read_text())
    unit: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.render(variables).splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit.setdefault(section, {})[key] = value
    return unit


@pytest.mark.parametrize("device", ["/dev/loop3", "/dev/disk/by-id/virtio-models"])
def test_a_device_is_mounted_as_the_device(device: str) -> None:
    unit = mount_unit(device)
    assert unit["Mount"]["What"] == device, f"the unit mounts {unit['Mount']['What']}"
    assert "loop" not in unit["Mount"]["Options"].split(","), unit["Mount"]["Options"]
    assert "RequiresMountsFor" not in unit["Unit"], "a device needs no image file's folder"
    assert (unit["Mount"]["Where"], unit["Mount"]["Type"]) == (MOUNT_POINT, "ext4")


def test_without_a_device_the_image_file_is_mounted_by_loop() -> None:
    unit = mount_unit("")
    assert unit["Mount"]["What"] == IMAGE_FILE
    assert unit["Mount"]["Options"].split(",")[0] == "loop", unit["Mount"]["Options"]
    assert unit["Unit"]["RequiresMountsFor"] == "/var/lib/nica"


def test_the_unit_comes_before_docker_either_way() -> None:
    for device in ("", "/dev/loop3"):
        assert mount_unit(device)["Unit"]["Before"] == "docker.service"
