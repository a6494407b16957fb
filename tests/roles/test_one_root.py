"""One place says where the stack lives on a host: backend_root (roles/backend_common).
Everything under it follows the setting, so no role or playbook may name /opt/nica itself
(the deploy lock's state directory and logs.yml's compose directory once did, and did not
follow a changed backend_root). The other places are the stand-alone defaults of
roles/deploy_lock and roles/fast_path, which the playbooks wire to backend_root
(playbooks/vars/), and the argument specs that document those defaults."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {
    f"roles/{role}/{file}"
    for role in ("backend_common", "deploy_lock", "fast_path")
    for file in ("defaults/main.yml", "meta/argument_specs.yml")
}


def test_no_role_or_playbook_names_the_root_but_its_setting() -> None:
    files = [REPO / "deploy.yml", *REPO.glob("playbooks/**/*.yml"), *REPO.glob("roles/**/*.yml"),
             *REPO.glob("roles/**/*.j2")]  # fmt: skip
    assert len(files) > 50, f"found only {len(files)} files to look at"
    naming = []
    for path in files:
        relative = str(path.relative_to(REPO))
        lines = path.read_text(encoding="utf-8").splitlines()
        hits = [n for n, line in enumerate(lines, 1) if "/opt/nica" in line.split("#", 1)[0]]
        if hits and relative not in ALLOWED:
            naming.append(f"{relative}:{hits}")
    assert naming == [], f"these name /opt/nica instead of following backend_root: {naming}"
