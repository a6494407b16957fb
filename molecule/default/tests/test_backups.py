"""Backups that outlive their host, and restores that cannot make things worse:
1. playbooks/backup.yml keeps a copy of the dump on the controller
   (backend_backup_copy_dir/<host>/, with its sha256, checked after the copy);
2. restore.yml of a truncated dump fails, and leaves the database exactly as it was and the
   serving release serving (pg_restore runs in one transaction);
3. the 3 a.m. host replacement (docs/operations.md, "Replacing a lost host"): the host's
   database and its backups are lost (the database volume and backend_backup_dir deleted),
   deploy.yml makes a new, empty database and migrates it, and restore.yml restores the
   controller's copy, which the host never held any more: the documents are back."""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

import pytest
from runs import REPO, Run, ansible_playbook, deploy, http, playbook, sh

COPIES = REPO / "build" / "backup-copies"  # inventory/local's backend_backup_copy_dir
MARKER = "host-replacement-marker"
# The database's content, row by row: the same text before and after means the same data.
DATABASE = (
    "docker exec nica-postgres-1 psql -h /var/run/postgresql -U app -d app -At -c"
    " \"SELECT md5(string_agg(d::text, ',' ORDER BY d.id)) FROM documents d\""
    ' -c "SELECT count(*) FROM collections" -c "SELECT version_num FROM alembic_version"'
)


def search(host: Any, query: str) -> list[str]:
    status, body = http(
        host, f"http://127.0.0.1:8000/v1/search?{urllib.parse.urlencode({'q': query, 'k': 3})}"
    )
    assert status == 200, f"/v1/search answered {status}: {body}"
    return [hit["title"] for hit in body["data"]]


@pytest.fixture(scope="module")
def story(host: Any) -> dict[str, Any]:
    done: dict[str, Any] = {}
    status, _ = http(
        host,
        "http://127.0.0.1:8000/v1/documents",
        {
            "title": MARKER,
            "text": "Stored before the host was lost; restored from the controller's copy.",
        },
    )
    assert status == 201, f"storing the marker document answered {status}"
    done["backup"] = ansible_playbook("backups-backup", playbook("backup"))
    name = sh(host, "ls /opt/nica/backups | grep -- '-manual.dump$' | sort | tail -n 1").strip()
    done["name"], done["host_sha256"] = name, host.file(f"/opt/nica/backups/{name}").sha256sum
    copy = COPIES / host.backend.host / name
    done["copy"] = copy.read_bytes() if copy.exists() else b""
    done["copy_sha256_file"] = (copy.parent / f"{name}.sha256").read_text() if copy.exists() else ""
    # A dump cut short, as a full disk or a broken transfer leaves one: three quarters of
    # it, past its table of contents and into the documents' data, so that pg_restore has
    # dropped and recreated tables before it fails (cut at half, it fails while reading
    # the table of contents, before any change, and would prove nothing).
    size = host.file(f"/opt/nica/backups/{name}").size
    truncated = name.replace("-manual.dump", "-truncated.dump")
    sh(host, f"head -c {size * 3 // 4} /opt/nica/backups/{name} > /opt/nica/backups/{truncated}")
    done["database_before"] = sh(host, DATABASE)
    done["truncated"] = ansible_playbook(
        "backups-restore-truncated",
        "-e",
        f"backend_restore_backup={truncated}",
        playbook("restore"),
    )
    done["database_after_truncated"] = sh(host, DATABASE)
    done["readyz_after_truncated"], _ = http(host, "http://127.0.0.1:8000/readyz")
    # The host's database and its backups are lost.
    sh(
        host,
        "cd /opt/nica/compose && docker compose down && docker volume rm nica_pg-data"
        " && rm -rf /opt/nica/backups",
    )
    done["redeploy"] = deploy("backups-redeploy")
    done["found_after_loss"] = search(host, "restored from the controller's copy")
    done["restore"] = ansible_playbook(
        "backups-restore-copy", "-e", f"backend_restore_backup={name}", playbook("restore")
    )
    done["found_after_restore"] = search(host, "restored from the controller's copy")
    done["readyz_after_restore"], _ = http(host, "http://127.0.0.1:8000/readyz")
    return done


def test_backup_yml_keeps_a_checked_copy_on_the_controller(story):
    assert story["backup"].rc == 0, str(story["backup"])
    assert story["copy"], f"no copy of {story['name']} in {COPIES}"
    assert hashlib.sha256(story["copy"]).hexdigest() == story["host_sha256"], (
        "the copy is not the backup"
    )
    assert story["copy_sha256_file"].split()[0] == story["host_sha256"], (
        "the copy's .sha256 is not the backup's"
    )


def test_a_truncated_dump_is_refused_and_changes_nothing(story):
    run: Run = story["truncated"]
    assert run.rc != 0, "the restore of a truncated dump succeeded"
    assert story["database_after_truncated"] == story["database_before"], (
        "the failed restore changed the database: it must run in one transaction"
    )
    assert story["readyz_after_truncated"] == 200, (
        "the serving release did not serve again after the failed restore"
    )


def test_a_new_host_starts_with_an_empty_migrated_database(story):
    assert story["redeploy"].rc == 0, str(story["redeploy"])
    assert MARKER not in story["found_after_loss"], "the database was not lost: nothing was proven"


def test_the_controllers_copy_restores_the_lost_hosts_documents(story):
    assert story["restore"].rc == 0, str(story["restore"])
    assert MARKER in story["found_after_restore"], (
        f"the restored database lacks the document: {story['found_after_restore']}"
    )
    assert story["readyz_after_restore"] == 200
