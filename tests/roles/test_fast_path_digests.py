"""roles/fast_path's two digests: the fast path is only correct if every change the full
path would act on moves a digest, and only useful if what runs write for themselves does not.
(Molecule proves the whole path on a host: molecule/default/tests/test_fast_path.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

FILES = Path(__file__).resolve().parents[2] / "roles" / "fast_path" / "files"


def host_digest(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, str(FILES / "state_digest.py"), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def tree_digest(*roots: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(FILES / "tree_digest.py"), *map(str, roots)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def a_host(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "opt"
    (root / "state").mkdir(parents=True)
    (root / "compose").mkdir()
    (root / "compose" / "stack.env").write_text("A=1\n")
    (root / "state" / "audit.jsonl").write_text("{}\n")
    (root / "backups").mkdir()
    config = {
        "files": [str(root)],
        "exclude": [str(root / "state" / "audit.jsonl"), str(root / "backups")],
        "exist": [str(root / "marker")],
        "record": str(root / "state" / "fast-path.json"),
    }
    return root, config


def test_the_host_digest_is_stable_when_nothing_changes(tmp_path: Path) -> None:
    _, config = a_host(tmp_path)
    assert host_digest(config, tmp_path)["digest"] == host_digest(config, tmp_path)["digest"]


def test_a_changed_file_its_mode_a_new_file_or_a_removed_one_change_the_host_digest(
    tmp_path: Path,
) -> None:
    root, config = a_host(tmp_path)
    env = root / "compose" / "stack.env"
    seen = {host_digest(config, tmp_path)["digest"]}
    for change in (
        lambda: env.write_text("A=2\n"),
        lambda: env.chmod(0o600),
        lambda: (root / "compose" / "new.conf").write_text(""),
        lambda: env.unlink(),
        lambda: (root / "marker").write_text(""),
    ):
        change()
        digest = host_digest(config, tmp_path)["digest"]
        assert digest not in seen, "a change on the host left the digest as it was"
        seen.add(digest)


def test_what_runs_write_for_themselves_does_not_change_the_host_digest(tmp_path: Path) -> None:
    root, config = a_host(tmp_path)
    before = host_digest(config, tmp_path)["digest"]
    (root / "state" / "audit.jsonl").write_text('{"action": "deploy"}\n')
    (root / "backups" / "app-0003.dump").write_text("dump")
    assert host_digest(config, tmp_path)["digest"] == before


def test_a_failing_command_is_part_of_the_digest_not_an_error(tmp_path: Path) -> None:
    _, config = a_host(tmp_path)
    before = host_digest(config, tmp_path)["digest"]
    config["services"] = ["no-such-unit-nica-test.service"]
    assert host_digest(config, tmp_path)["digest"] != before


def test_the_record_comes_back_with_the_digest(tmp_path: Path) -> None:
    root, config = a_host(tmp_path)
    assert host_digest(config, tmp_path)["recorded"] is None
    record = {"inputs": "i", "host": "h", "release": "r"}
    (root / "state" / "fast-path.json").write_text(json.dumps(record))
    assert host_digest(config, tmp_path)["recorded"] == record


def a_tree(root: Path) -> Path:
    (root / "roles" / "backend").mkdir(parents=True)
    (root / "roles" / "backend" / "main.yml").write_text("- name: x\n")
    (root / "deploy.yml").write_text("---\n")
    return root


def test_two_copies_of_one_tree_have_one_digest(tmp_path: Path) -> None:
    first = a_tree(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first, second)
    assert tree_digest(first) == tree_digest(second)


def test_a_changed_source_file_changes_the_tree_digest(tmp_path: Path) -> None:
    root = a_tree(tmp_path / "repo")
    before = tree_digest(root)
    (root / "roles" / "backend" / "main.yml").write_text("- name: y\n")
    assert tree_digest(root) != before
    changed = tree_digest(root)
    (root / "deploy.yml").chmod(0o755)
    assert tree_digest(root) != changed


def test_build_outputs_and_caches_do_not_change_the_tree_digest(tmp_path: Path) -> None:
    root = a_tree(tmp_path / "repo")
    before = tree_digest(root)
    for skipped in ("build", ".git", ".venv", "roles/__pycache__"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "file").write_text("anything")
    assert tree_digest(root) == before


def test_a_second_tree_is_part_of_the_tree_digest(tmp_path: Path) -> None:
    repo = a_tree(tmp_path / "repo")
    project = a_tree(tmp_path / "project")
    both = tree_digest(repo, project)
    (project / "deploy.yml").write_text("--- # changed\n")
    assert tree_digest(repo, project) != both


def test_a_rewritten_large_file_changes_the_host_digest_by_its_mtime(tmp_path: Path) -> None:
    root, config = a_host(tmp_path)
    archive = root / "images" / "python.tar"
    archive.parent.mkdir()
    archive.write_bytes(b"\0" * (17 << 20))
    os.utime(archive, ns=(1_000_000_000, 1_000_000_000))
    before = host_digest(config, tmp_path)["digest"]
    archive.write_bytes(b"\1" * (17 << 20))  # same size, new content, new mtime
    assert host_digest(config, tmp_path)["digest"] != before


def test_another_image_under_the_same_name_changes_the_host_digest(tmp_path: Path) -> None:
    # A base image pulled again (a registry's newer build under the same tag) must defeat
    # the fast path: the digest keys each image by its ID, not its name. Two real builds
    # under one name of our own (a label apart, on scripts/lib/bootstrap.sh's python image):
    # the second takes the name, as a pull does, and both carry just that tag.
    name = f"nica-test/fast-path-probe:{os.getpid()}"
    _, config = a_host(tmp_path)
    config["images"] = [name]
    ids = []

    def build(build: str) -> str:
        done = subprocess.run(
            ["docker", "build", "--quiet", "--tag", name, "-"],
            input=f"FROM nica-test/python:3.11-slim\nLABEL nica.probe={build}\n",
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(done.stdout.strip())
        return str(host_digest(config, tmp_path)["digest"])

    try:
        first, second = build("first"), build("second")
    finally:
        subprocess.run(["docker", "rmi", "--force", *ids], capture_output=True, check=False)
    assert len(set(ids)) == 2, f"the two builds made one image: {ids}"
    assert second != first, "the same digest with another image under the name"
