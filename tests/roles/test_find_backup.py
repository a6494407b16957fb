"""restore.yml's first step (roles/database tasks_from: find_backup) finds the named backup
on the host, else among the controller's copies of any host's backups (the 3 a.m. host
replacement: the new host never held it), puts it on the host and checks it against its
sha256, or stops, naming what is there. Run for real in ansible-playbook, the "host" being
this machine (a local connection), with real files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NAME = "20261207T031500Z-manual.dump"


def find_backup(tmp_path: Path, backup: str) -> subprocess.CompletedProcess[str]:
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {
            "ansible_python_interpreter": sys.executable,
            "backend_backup_dir": str(tmp_path / "host-backups"),
            "backend_backup_copy_dir": str(tmp_path / "copies"),
            "backend_restore_backup": backup,
        },
        "tasks": [
            {"ansible.builtin.include_tasks": str(REPO / "roles/database/tasks/find_backup.yml")},
            {"ansible.builtin.debug": {"msg": "found {{ __database_restore_path }}"}},
        ],
    }
    (tmp_path / "run.yml").write_text(yaml.safe_dump([play]))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    playbook = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(playbook), str(tmp_path / "run.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def copy_of(tmp_path: Path, host: str, content: bytes, sha256: str | None = None) -> Path:
    """A copy as backup.yml leaves it: copies/<host>/<name> and <name>.sha256 beside it."""
    directory = tmp_path / "copies" / host
    directory.mkdir(parents=True)
    copy = directory / NAME
    copy.write_bytes(content)
    digest = sha256 or hashlib.sha256(content).hexdigest()
    copy.with_name(f"{NAME}.sha256").write_text(f"{digest}  {NAME}\n")
    return copy


def test_a_copy_of_another_hosts_backup_is_put_on_the_host(tmp_path: Path) -> None:
    copy_of(tmp_path, "lost-host", b"PGDMP the lost host's database")
    done = find_backup(tmp_path, NAME)
    assert done.returncode == 0, done.stdout[-2000:]
    placed = tmp_path / "host-backups" / NAME
    assert placed.read_bytes() == b"PGDMP the lost host's database"
    assert f"found {placed}" in done.stdout


def test_a_copy_named_by_its_path_on_the_controller_is_put_on_the_host(tmp_path: Path) -> None:
    copy = copy_of(tmp_path, "elsewhere", b"PGDMP named by path")
    done = find_backup(tmp_path, str(copy))
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "host-backups" / NAME).read_bytes() == b"PGDMP named by path"


def test_a_copy_that_is_not_its_backup_is_refused(tmp_path: Path) -> None:
    copy_of(tmp_path, "lost-host", b"PGDMP changed since", sha256="0" * 64)
    done = find_backup(tmp_path, NAME)
    assert done.returncode != 0
    assert "does not match" in done.stdout and "nothing was stopped" in done.stdout, done.stdout


def test_no_such_backup_says_where_it_looked_and_what_there_is(tmp_path: Path) -> None:
    (tmp_path / "host-backups").mkdir()
    (tmp_path / "host-backups" / "20261201T000000Z-manual.dump").write_bytes(b"PGDMP")
    done = find_backup(tmp_path, NAME)
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    assert f"No backup {NAME} in {tmp_path / 'host-backups'}" in text, text[-2000:]
    assert "on the host there are: 20261201T000000Z-manual.dump." in text
