"""roles/backend_common's preflight (tasks/validate.yml) refuses what the backend refuses.

Also the settings it checks on its own: image references (a digest pins them) and
the publish address.

One rule for a repo id and a revision (backend/src/model_spec_rules.json), read by the
backend, by this role's validation and by the fake Hub; each is held to the same list of
examples (tests/data/model_spec_examples.json). The role's checks run for real, in
ansible-playbook on localhost (nothing is changed: validation only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = json.loads((REPO / "tests" / "data" / "model_spec_examples.json").read_text())
ADDRESSES = {
    "accept": ["127.0.0.1", "0.0.0.0", "10.1.2.3", "::", "::1", "fd00::10", "2001:db8::1"],  # noqa: S104
    "refuse": ["localhost", "256.1.1.1", "1.2.3", "[::1]", "::1::2", "127.0.0.1 ", ""],
}
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGES = {
    "accept": [
        "python:3.11-slim",
        f"python:3.11-slim@{DIGEST}",
        f"postgres@{DIGEST}",
        f"registry.example.com:5000/team/nginx:stable@{DIGEST}",
        "nica-test/python:3.11-slim",
    ],
    "refuse": ["Python:3.11", "python:3.11-slim@sha256:abc", "python::3.11", "python:3.11 ", ""],
}
REGISTRIES = {
    "accept": ["", "10.99.83.20:5000", "registry.example.com", "registry.example.com:443/a/b"],
    "refuse": ["http://10.0.0.1:5000", "registry.example.com/", "reg istry", "host:port", "a/B"],
}
ARCHIVE_SUMS = {"accept": ["0123456789abcdef" * 4], "refuse": ["0123", "0123456789ABCDEF" * 4]}
# The role's defaults of the variables the cases set.
DEFAULTS = {
    "backend_hf_model_repos": ["sentence-transformers/all-MiniLM-L6-v2"],
    "backend_hf_revision": "main",
    "backend_publish_address": "127.0.0.1",
    "backend_base_image": "python:3.11-slim",
    "backend_base_image_archives": [],
    "backend_image_registry": "",
    "backend_api_keys": [],
    "backend_allow_insecure_publish": False,
    # TLS at the proxy is a setting of its own; the publish rule only asks whether it is set.
    "backend_tls_certificate": "",
    "backend_tls_private_key": "",
    "backend_tls_redirect_http": False,
    "backend_tls_publish_port": 8443,
}
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (what the publish rule is about)
API_KEY = {"name": "ingest", "scope": "write", "key": "k" * 32}
# Where the API may be published open (loopback), and what makes a public address acceptable.
PUBLISH: dict[str, dict[str, dict[str, Any]]] = {
    "accept": {
        "loopback 127.0.0.1": {"backend_publish_address": "127.0.0.1"},
        "loopback 127.0.1.1": {"backend_publish_address": "127.0.1.1"},
        "loopback ::1": {"backend_publish_address": "::1"},
        "0.0.0.0 with API keys": {
            "backend_publish_address": EVERY_INTERFACE,
            "backend_api_keys": [API_KEY],
        },
        # A public address with TLS (a real pair): tests/roles/test_validate_tls.py.
        ":: with the opt-in": {
            "backend_publish_address": "::",
            "backend_allow_insecure_publish": True,
        },
    },
    "refuse": {
        "0.0.0.0 open": {"backend_publish_address": EVERY_INTERFACE},
        "10.1.2.3 open": {"backend_publish_address": "10.1.2.3"},
        ":: open": {"backend_publish_address": "::"},
        "fd00::10 open": {"backend_publish_address": "fd00::10"},
        "loopback, a key too short": {"backend_api_keys": [{**API_KEY, "key": "k" * 31}]},
        "loopback, a scope not read or write": {
            "backend_api_keys": [{**API_KEY, "scope": "admin"}]
        },
        "loopback, two keys of one name": {
            "backend_api_keys": [API_KEY, {**API_KEY, "key": "j" * 32}]
        },
    },
}


def run_validate(tmp_path: Path, cases: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Run validate.yml once per case (extra role variables); which cases it accepted."""
    playbook = tmp_path / "validate.yml"
    out = tmp_path / "accepted.json"
    case_file = tmp_path / "one_case.yml"
    case_file.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Validate one case",
                    "block": [
                        {
                            "name": "Run the role's validation",
                            "ansible.builtin.include_role": {
                                "name": "backend_common",
                                "tasks_from": "validate",
                            },
                            "vars": {
                                name: f"{{{{ case.value.{name} | default({default!r}) }}}}"
                                for name, default in DEFAULTS.items()
                            },
                        },
                        {
                            "name": "Note it as accepted",
                            "ansible.builtin.set_fact": {
                                "accepted": "{{ accepted | default([]) + [case.key] }}"
                            },
                        },
                    ],
                    "rescue": [{"name": "Refused", "ansible.builtin.meta": "noop"}],
                }
            ]
        )
    )
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"cases": cases},
                    "tasks": [
                        {
                            "ansible.builtin.include_tasks": str(case_file),
                            "loop": "{{ cases | dict2items }}",
                            "loop_control": {"loop_var": "case"},
                        },
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ accepted | default([]) | to_json }}",
                                "dest": str(out),
                                "mode": "0600",
                            }
                        },
                    ],
                }
            ]
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
         "-c", "local", str(playbook)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    accepted = set(json.loads(out.read_text()))
    return {name: name in accepted for name in cases}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bool]:
    cases: dict[str, dict[str, Any]] = {}
    for kind in ("accept", "refuse"):
        for repo in EXAMPLES["repo_ids"][kind]:
            cases[f"repo {kind} {repo!r}"] = {"backend_hf_model_repos": [repo]}
        for revision in EXAMPLES["revisions"][kind]:
            cases[f"revision {kind} {revision!r}"] = {"backend_hf_revision": revision}
            cases[f"pinned {kind} {revision!r}"] = {
                "backend_hf_model_repos": [f"org/name@{revision}"]
            }
        for image in IMAGES[kind]:
            cases[f"image {kind} {image!r}"] = {"backend_base_image": image}
        for sha in ARCHIVE_SUMS[kind]:
            archive = {"image": "python:3.11-slim", "archive": "/srv/p.tar", "sha256": sha}
            cases[f"archive {kind} {sha!r}"] = {"backend_base_image_archives": [archive]}
        for address in ADDRESSES[kind]:
            # The address rule alone: an open API on it is the publish rule's (below).
            cases[f"address {kind} {address!r}"] = {
                "backend_publish_address": address,
                "backend_allow_insecure_publish": True,
            }
        for name, case in PUBLISH[kind].items():
            cases[f"publish {kind} {name}"] = case
        for registry in REGISTRIES[kind]:
            cases[f"registry {kind} {registry!r}"] = {"backend_image_registry": registry}
    return run_validate(tmp_path_factory.mktemp("validate"), cases)


def test_the_role_accepts_and_refuses_the_shared_examples(verdicts: dict[str, bool]) -> None:
    wrong = [name for name, accepted in verdicts.items() if accepted != (" accept " in name)]
    assert not wrong, f"roles/backend_common's validation disagrees with the examples: {wrong}"


def _fake_hub() -> Any:
    path = REPO / "testing" / "fake_hub" / "fake_hf_hub.py"
    spec = importlib.util.spec_from_file_location("fake_hf_hub", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_hf_hub"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_fake_hub_accepts_and_refuses_the_shared_repo_ids() -> None:
    pattern = _fake_hub().REPO_ID_RE
    wrong = [r for r in EXAMPLES["repo_ids"]["accept"] if not pattern.match(r)]
    wrong += [r for r in EXAMPLES["repo_ids"]["refuse"] if pattern.match(r)]
    assert not wrong, f"the fake Hub disagrees with the examples on {wrong}"
