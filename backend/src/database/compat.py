"""Can this release serve the database's schema? The expand/contract rule, in one place.

Used by /readyz (src.readiness), `python -m src.database.cli compat` and the migration runner
of a release older than the database. This release serves a schema that is:
- at its own head;
- ahead of its head when every revision between (walked in schema_history from the database's
  revision back through down_revision to this head) is `backward_compatible`: the later
  releases' migrations were expand-only, so this code still works against them.
It does not serve a database that is not migrated, behind its head (one of its own older
revisions), ahead through a migration that is not backward compatible (that migration's release
must serve), or at a revision it cannot trace back to its head.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from src.database.schema_history import HistoryEntry, current_revision, read_history

OK = "ok"


@dataclass(frozen=True)
class SchemaStatus:
    serves: bool
    at_head: bool
    detail: str

    @property
    def check(self) -> str:
        """The readiness text: "ok" at the head, "ok: <detail>" when serving ahead of it."""
        if self.at_head:
            return OK
        return f"{OK}: {self.detail}" if self.serves else self.detail


def schema_status(
    current: str | None,
    head: str,
    known: Collection[str],
    history: Mapping[str, HistoryEntry],
) -> SchemaStatus:
    """The rule: `known` are this release's revisions, `history` is schema_history by revision."""
    if current == head:
        return SchemaStatus(serves=True, at_head=True, detail=f"at {head}, this release's head")
    if current is None:
        return SchemaStatus(serves=False, at_head=False, detail=f"not migrated, head is {head}")
    if current in known:
        return SchemaStatus(serves=False, at_head=False, detail=f"at {current}, head is {head}")
    ahead = _revisions_ahead(current, head, history)
    if ahead is None:
        return SchemaStatus(
            serves=False,
            at_head=False,
            detail=(
                f"at {current}, head is {head}; {current} is not one of this release's "
                f"migrations and schema_history does not lead from it back to {head}"
            ),
        )
    blocking = next((rev for rev in ahead if not history[rev].backward_compatible), None)
    if blocking is not None:
        return SchemaStatus(
            serves=False,
            at_head=False,
            detail=(
                f"at {current}, ahead of this release's head {head}; migration {blocking} "
                "is not backward compatible (its release must serve)"
            ),
        )
    plural = "s" if len(ahead) > 1 else ""
    return SchemaStatus(
        serves=True,
        at_head=False,
        detail=(
            f"at {current}, ahead of this release's head {head} by backward-compatible "
            f"migration{plural} {', '.join(ahead)}"
        ),
    )


def serving_status(connection: Connection, head: str, known: Collection[str]) -> SchemaStatus:
    """schema_status() of the database behind `connection`; schema_history is read only when
    the database is at a revision this release does not have."""
    current = current_revision(connection)
    history = read_history(connection) if current is not None and current not in known else {}
    return schema_status(current, head, known, history)


def _revisions_ahead(
    current: str, head: str, history: Mapping[str, HistoryEntry]
) -> list[str] | None:
    """The revisions after `head` up to `current`, oldest first; None if the walk from
    `current` down the history never reaches `head`."""
    path: list[str] = []
    revision: str | None = current
    while revision != head:
        entry = history.get(revision) if revision is not None else None
        if entry is None or revision in path:
            return None
        path.append(entry.revision)
        revision = entry.down_revision
    return path[::-1]
