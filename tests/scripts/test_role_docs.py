"""scripts/role_docs.py: the role variable tables in the docs are the roles' argument specs.

Run from the repository root: `.venv/bin/python -m pytest -q tests/scripts`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "role_docs.py"


def load_role_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


role_docs = load_role_docs()

ALPHA_SPECS = """\
---
argument_specs:
  main:
    short_description: A role for the test.
    options:
      alpha_port:
        type: int
        default: 8000
        description: The port.
      alpha_mode:
        type: str
        choices: [fast, safe]
        default: safe
        description: How it runs | with a pipe.
      alpha_key:
        type: str
        required: true
        description: A key.
      alpha_packages:
        type: list
        default: [one, two]
        description: Packages.
"""
ALPHA_TABLE = """\
| variable | type | default | description |
| --- | --- | --- | --- |
| `alpha_port` | int | `8000` | The port. |
| `alpha_mode` | str (fast, safe) | `safe` | How it runs \\| with a pipe. |
| `alpha_key` | str | *required* | A key. |
| `alpha_packages` | list | `one two` | Packages. |"""


def add_role(repo: Path, role: str, specs: str) -> None:
    meta = repo / "roles" / role / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(specs)


def markers(role: str, body: str = "") -> str:
    return f"<!-- role-vars:{role} -->\n{body}\n<!-- /role-vars:{role} -->"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with one role and a short README that holds no table."""
    add_role(tmp_path, "alpha", ALPHA_SPECS)
    (tmp_path / "README.md").write_text("# A project\n\nSee docs/.\n")
    (tmp_path / "docs").mkdir()
    return tmp_path


def run(repo: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = role_docs.main(list(argv), repo=repo)
    return code, capsys.readouterr().err


def test_the_repository_tables_match_the_argument_specs() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"role_docs.py --check failed:\n{result.stderr}"


def test_a_table_in_a_docs_page_is_rendered_from_the_specs(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = repo / "docs" / "hosts.md"
    page.write_text(f"# Hosts\n\nBefore.\n\n{markers('alpha', '| stale |')}\n\nAfter.\n")
    assert run(repo, capsys) == (0, "")
    assert page.read_text() == f"# Hosts\n\nBefore.\n\n{markers('alpha', ALPHA_TABLE)}\n\nAfter.\n"
    assert run(repo, capsys, "--check") == (0, ""), "a freshly rendered page should pass --check"


def test_check_names_the_stale_page_and_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = repo / "docs" / "roles" / "alpha.md"
    nested.parent.mkdir()
    nested.write_text(markers("alpha", "| `alpha_port` | int | `9000` | The port. |"))
    code, err = run(repo, capsys, "--check")
    assert code == 1, "a stale table in docs/roles/alpha.md should fail --check"
    assert "docs/roles/alpha.md: role tables are stale; run scripts/role_docs.py" in err, err
    assert "`9000`" in nested.read_text(), "--check must not rewrite the page"


def test_a_table_in_the_readme_is_still_rendered(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "README.md").write_text(markers("alpha") + "\n")
    assert run(repo, capsys) == (0, "")
    assert ALPHA_TABLE in (repo / "README.md").read_text()


def test_a_new_role_needs_only_a_marker_in_any_docs_page(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "docs" / "hosts.md").write_text(markers("alpha", ALPHA_TABLE) + "\n")
    add_role(repo, "beta", ALPHA_SPECS.replace("alpha_", "beta_"))
    code, err = run(repo, capsys, "--check")
    assert code == 1, "a role with argument specs and no table should fail --check"
    assert "role 'beta' has argument specs but no table: add <!-- role-vars:beta -->" in err, err

    (repo / "docs" / "operations.md").write_text("# Operations\n\n" + markers("beta") + "\n")
    assert run(repo, capsys) == (0, "")
    operations = (repo / "docs" / "operations.md").read_text()
    assert "| `beta_port` | int | `8000` | The port. |" in operations
    assert run(repo, capsys, "--check") == (0, "")


def test_a_marker_for_a_role_without_specs_is_one_line_naming_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "docs" / "hosts.md").write_text(markers("alpha", ALPHA_TABLE) + "\n" + markers("gone"))
    code, err = run(repo, capsys, "--check")
    assert code == 1
    assert err == (
        "error: docs/hosts.md: no argument specs for role 'gone' "
        "(roles/gone/meta/argument_specs.yml)\n"
    ), err


def test_a_role_without_a_main_entry_point_lists_every_entry_points_options(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_role(
        repo,
        "gamma",
        textwrap.dedent(
            """\
            ---
            argument_specs:
              rollback:
                options:
                  gamma_to: {type: str, default: previous, description: Where to.}
              status:
                options:
                  gamma_to: {type: str, default: previous, description: Where to.}
                  gamma_lines: {type: int, default: 10, description: How many.}
            """
        ),
    )
    page = repo / "docs" / "hosts.md"
    page.write_text(markers("alpha") + "\n" + markers("gamma") + "\n")
    assert run(repo, capsys) == (0, "")
    text = page.read_text()
    assert "| `gamma_to` | str | `previous` | Where to. |\n| `gamma_lines` | int | `10` |" in text
    assert text.count("| `gamma_to` | str") == 1, "an option shared by entry points is listed once"
    # and the entry points, each with the inputs it takes
    assert "| `tasks_from: rollback` |  | `gamma_to` |" in text, text
    assert "| `tasks_from: status` |  | `gamma_to`, `gamma_lines` |" in text, text
