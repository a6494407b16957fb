"""The one secret-file writer (roles/backend_common/library/secret_file.py), run by Ansible.

Each case runs the real module on localhost through `ansible -m secret_file`, as a task
does, and looks at the file it leaves: content, owner, mode, the rename that replaces it,
and that the secret never appears in what Ansible prints.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from .loader import REPO

LIBRARY = REPO / "roles" / "backend_common" / "library"
SECRET = "s3cr3t-Token-for-the-test-only"  # noqa: S105  # a throwaway test value


def secret_file(check: bool = False, **args: Any) -> dict[str, Any]:
    """Run the module once; its JSON result (the one-line callback prints it)."""
    args = {"owner": os.getuid(), "group": os.getgid(), **args}
    command = [
        "ansible",
        "localhost",
        "-M",
        str(LIBRARY),
        "-m",
        "secret_file",
        "-a",
        json.dumps(args),
    ]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.oneline",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }
    result = subprocess.run(
        command + (["--check"] if check else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert SECRET not in result.stdout + result.stderr, "the secret was printed"
    line = next(line for line in result.stdout.splitlines() if line.startswith("localhost | "))
    return {"rc": result.returncode, **json.loads(line[line.index("{") :])}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_content_is_written_mode_0400_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "token"
    first = secret_file(path=str(path), content=SECRET)
    assert (first["rc"], first["changed"]) == (0, True), first
    assert path.read_text() == SECRET and mode(path) == 0o400
    second = secret_file(path=str(path), content=SECRET)
    assert (second["rc"], second["changed"]) == (0, False), "an unchanged secret was written again"


def test_new_content_replaces_the_file_by_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "token"
    secret_file(path=str(path), content="old-" + SECRET)
    inode = path.stat().st_ino
    result = secret_file(path=str(path), content=SECRET)
    assert result["changed"] and path.read_text() == SECRET
    assert path.stat().st_ino != inode, (
        "rewritten in place, not renamed over (a reader sees half a file)"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["token"], "a temp file was left behind"


def test_a_generated_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "password"
    assert secret_file(path=str(path), generate=40)["changed"]
    made = path.read_text()
    assert len(made) == 40 and made.isalnum()
    assert not secret_file(path=str(path), generate=40)["changed"]
    assert path.read_text() == made, "a generated password was made again"


def test_a_copy_follows_its_source(tmp_path: Path) -> None:
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_text("first")
    assert secret_file(path=str(copy), copy_from=str(source))["changed"]
    assert not secret_file(path=str(copy), copy_from=str(source))["changed"]
    source.write_text("second")
    assert secret_file(path=str(copy), copy_from=str(source))["changed"]
    assert copy.read_text() == "second"


def test_the_mode_is_set_back_even_when_the_content_is_right(tmp_path: Path) -> None:
    path = tmp_path / "token"
    secret_file(path=str(path), content=SECRET)
    path.chmod(0o644)
    assert secret_file(path=str(path), content=SECRET)["changed"]
    assert mode(path) == 0o400


def test_check_mode_writes_nothing_and_reports_the_change(tmp_path: Path) -> None:
    path = tmp_path / "token"
    result = secret_file(check=True, path=str(path), content=SECRET)
    assert (result["rc"], result["changed"]) == (0, True), result
    assert not path.exists(), "a dry run wrote the secret"


def test_a_missing_directory_is_one_line_naming_it(tmp_path: Path) -> None:
    result = secret_file(path=str(tmp_path / "nowhere" / "token"), content=SECRET)
    assert result["rc"] != 0
    assert (
        result["msg"]
        == f"{tmp_path / 'nowhere'} does not exist; create the secrets directory first"
    )
