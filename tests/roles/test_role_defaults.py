"""Each role stands alone: its defaults read only its own variables (deploy.yml and
playbooks/vars/ wire the roles together)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROLES = Path(__file__).resolve().parents[2] / "roles"
# Names a default may read besides the role's own: Ansible's magic variables and lookup().
MAGIC = {"role_path", "ansible_facts", "inventory_hostname", "ansible_check_mode", "lookup"}
# The prefix of a role's variables: its name, but for backend_common, which holds the
# settings of the whole backend stack (backend_*) for the roles that depend on it.
PREFIX = {"backend_common": "backend_"}
NAME = re.compile(r"\b([a-z_][a-z0-9_]*)\b")
TEMPLATE = re.compile(r"{{(.*?)}}", re.S)
STRING = re.compile(r"'[^']*'|\"[^\"]*\"")


def names_read(text: str) -> set[str]:
    """Variable-like names inside the {{ }} of a defaults file (strings and filters out)."""
    names: set[str] = set()
    for expression in TEMPLATE.findall(text):
        expression = STRING.sub("", expression)
        expression = re.sub(r"\|\s*[a-z_.]+", "", expression)  # filters
        names.update(NAME.findall(expression))
    return names - {"true", "false", "none", "if", "else", "and", "or", "not", "in", "is"}


WITH_DEFAULTS = sorted(p.parent.parent.name for p in ROLES.glob("*/defaults/main.yml"))


@pytest.mark.parametrize("role", WITH_DEFAULTS)
def test_a_roles_defaults_read_only_its_own_variables(role: str) -> None:
    text = (ROLES / role / "defaults" / "main.yml").read_text()
    prefix = PREFIX.get(role, role + "_")
    foreign = sorted(n for n in names_read(text) if not n.startswith(prefix) and n not in MAGIC)
    assert not foreign, f"roles/{role}/defaults/main.yml reads {foreign}: wire it in playbooks/vars"
