#!/usr/bin/env python3
"""A local server speaking the part of the Hugging Face Hub HTTP API that downloads use.

It serves directories as model repositories to `huggingface_hub` (`snapshot_download`,
`hf_hub_download`, `model_info`, `list_repo_tree`) so that tests never need the real Hub.
Standard library only: it runs on any python3 >= 3.11 (Debian 13 ships 3.13).

Routes (all repos are model repos, ids are `namespace/name`):
  GET       /api/models/{repo}                      model info at `main`
  GET       /api/models/{repo}/revision/{rev}       model info at a revision (?blobs=true)
  GET       /api/models/{repo}/tree/{rev}[/{path}]  file listing (?recursive=true, ?expand=true)
  GET|HEAD  /{repo}/resolve/{rev}/{path}            file content (Range supported)

Usage:
  fake_hf_hub.py --bind 127.0.0.1 --port 8080 \\
      --repo sentence-transformers/all-MiniLM-L6-v2=/data/minilm \\
      --repo nica/private-minilm=/data/minilm:private \\
      --token-file /run/secrets/hub_token --log /var/log/fake-hub/requests.jsonl

`--ref NAME` makes NAME (a tag or branch) resolve too. Test-only faults: `--fail-first N`
answers 503 to the first N GETs of each file (`/resolve/`), `--throttle BYTES_PER_SEC`
streams file bodies slowly.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK_SIZE = 1024 * 1024
LFS_MIN_SIZE = 10 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", ".cache"})
# The backend's rule for a repo id (one rule, backend/src/model_spec_rules.json). Copied
# alone onto a test host (molecule mounts only this directory), the server checks just that
# an id is two safe path parts: it serves only the repos it is given anyway.
RULES_FILE = Path(__file__).resolve().parents[2] / "backend" / "src" / "model_spec_rules.json"
REPO_ID_RE = re.compile(
    json.loads(RULES_FILE.read_text(encoding="utf-8"))["repo_id"]
    if RULES_FILE.is_file()
    else r"^(?!.*\.\.)[^/\s]+/[^/\s]+\Z"
)
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
TRUE_VALUES = frozenset({"1", "true", "True"})

MSG_REPO_NOT_FOUND = "Repository not found"
MSG_BAD_CREDENTIALS = "Invalid credentials in Authorization header"


class UsageError(Exception):
    """A bad command line or repository directory."""


# ---------------------------------------------------------------- repositories


@dataclass(frozen=True)
class RepoEntry:
    """One file of a served repository."""

    path: str
    disk_path: Path
    size: int
    sha256: str
    git_oid: str
    lfs: bool

    @property
    def etag(self) -> str:
        # The Hub's ETag is the LFS sha256 for LFS files and the git blob id otherwise.
        return self.sha256 if self.lfs else self.git_oid

    def tree_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "file",
            "oid": self.git_oid,
            "size": self.size,
            "path": self.path,
        }
        if self.lfs:
            item["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return item

    @property
    def pointer_size(self) -> int:
        pointer = (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{self.sha256}\nsize {self.size}\n"
        )
        return len(pointer.encode())


@dataclass(frozen=True)
class Repo:
    """A directory served as one model repository with a single commit."""

    repo_id: str
    private: bool
    files: dict[str, RepoEntry]
    directories: frozenset[str]
    commit: str
    last_modified: str

    def resolves(self, revision: str) -> bool:
        return revision in ("main", self.commit)


def _lfs_patterns(root: Path) -> list[str]:
    attributes = root / ".gitattributes"
    if not attributes.is_file():
        return []
    patterns = []
    for line in attributes.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def _is_lfs(path: str, size: int, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return size >= LFS_MIN_SIZE or any(
        fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns
    )


def _hash_file(disk_path: Path, size: int) -> tuple[str, str]:
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())  # noqa: S324 - git object ids are sha1
    with disk_path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest()


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for filename in sorted(filenames):
            yield Path(dirpath, filename)


def load_repo(repo_id: str, root: Path, private: bool) -> Repo:
    """Index a directory: sizes, hashes and a deterministic commit id."""
    if not REPO_ID_RE.match(repo_id):
        raise UsageError(f"repo id {repo_id!r} is not of the form namespace/name")
    if not root.is_dir():
        raise UsageError(f"repo {repo_id}: {root} is not a directory")
    patterns = _lfs_patterns(root)
    files: dict[str, RepoEntry] = {}
    directories: set[str] = set()
    newest = 0.0
    for disk_path in _walk_files(root):
        stat = disk_path.stat()
        path = disk_path.relative_to(root).as_posix()
        sha256, git_oid = _hash_file(disk_path, stat.st_size)
        lfs = _is_lfs(path, stat.st_size, patterns)
        files[path] = RepoEntry(path, disk_path, stat.st_size, sha256, git_oid, lfs)
        newest = max(newest, stat.st_mtime)
        parts = path.split("/")[:-1]
        directories.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    if not files:
        raise UsageError(f"repo {repo_id}: {root} holds no files")
    listing = "".join(f"{path}\0{files[path].sha256}\n" for path in sorted(files))
    commit = hashlib.sha1(listing.encode()).hexdigest()  # noqa: S324 - a commit-like id
    last_modified = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return Repo(repo_id, private, files, frozenset(directories), commit, last_modified)


# ---------------------------------------------------------------- request log


class RequestLog:
    """Appends one JSON line per request; never records headers (so never a token)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8")

    def write(self, method: str, path: str, status: int, auth: str) -> None:
        if self._handle is None:
            return
        ts = datetime.now(UTC).isoformat(timespec="milliseconds")
        line = json.dumps(
            {"ts": ts, "method": method, "path": path, "status": status, "auth": auth}
        )
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


# ---------------------------------------------------------------- HTTP


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        repos: dict[str, Repo],
        token: str | None,
        log: RequestLog,
        faults: Faults | None = None,
        refs: frozenset[str] = frozenset(),
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, HubHandler)
        self.repos = repos
        self.token = token
        self.log = log
        self.faults = faults or Faults()
        self.refs = refs  # more names (tags, branches) that resolve to every repo's commit


class Faults:
    """Test-only misbehaviour: 503 on the first GETs of each file, slow file bodies."""

    def __init__(self, fail_first: int = 0, throttle: int = 0) -> None:
        self.fail_first = fail_first
        self.throttle = throttle  # bytes per second per response; 0: full speed
        self._gets: Counter[str] = Counter()
        self._lock = threading.Lock()

    def should_fail(self, url_path: str) -> bool:
        """True for the first `fail_first` GETs of this path."""
        if self.fail_first <= 0:
            return False
        with self._lock:
            self._gets[url_path] += 1
            return self._gets[url_path] <= self.fail_first


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hf-hub/1"
    server: HubServer

    _status = 0
    _auth = "none"
    _logged = False

    # ---- plumbing

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log: the JSON request log replaces it."""

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged when the status line goes out, not when the body ends: a client killed
        # mid-body (a SIGKILLed container whose FIN never left) can hold this thread for
        # minutes, and a restart in between would lose the record of what it asked for.
        self._status = code
        self._log_once()
        super().send_response(code, message)

    def _log_once(self) -> None:
        if not self._logged:
            self._logged = True
            self.server.log.write(self.command, self.path, self._status, self._auth)

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _other_method(self) -> None:
        self._logged = False
        self._auth = self._authenticate()
        try:
            self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed", head=False)
        finally:
            self._log_once()

    do_POST = do_PUT = do_DELETE = do_PATCH = _other_method  # noqa: N815

    def _handle(self, head: bool) -> None:
        self._status = 0
        self._logged = False
        self._auth = self._authenticate()
        try:
            self._route(head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._log_once()  # a request that got no response at all (status 0)

    def _authenticate(self) -> str:
        header = self.headers.get("Authorization")
        if header is None:
            return "none"
        scheme, _, value = header.partition(" ")
        token = self.server.token
        if scheme.lower() == "bearer" and token is not None and value.strip() == token:
            return "valid"
        return "invalid"

    def _send_json(
        self, status: int, body: Any, head: bool, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def _send_error(
        self,
        status: int,
        message: str,
        head: bool,
        code: str | None = None,
        commit: str | None = None,
    ) -> None:
        headers = {"X-Error-Message": message}
        if code is not None:
            headers["X-Error-Code"] = code
        if commit is not None:
            headers["X-Repo-Commit"] = commit
        self._send_json(status, {"error": message}, head, headers)

    # ---- routing

    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments = segments[:-1]
        if len(segments) >= 4 and segments[:2] == ["api", "models"]:
            repo_id, rest = "/".join(segments[2:4]), segments[4:]
            if not rest:
                self._model_info(repo_id, "main", query, head)
                return
            if rest[0] == "revision" and len(rest) == 2:
                self._model_info(repo_id, rest[1], query, head)
                return
            if rest[0] == "tree" and len(rest) >= 2:
                self._tree(repo_id, rest[1], "/".join(rest[2:]), query, head)
                return
        elif len(segments) >= 5 and segments[2] == "resolve":
            self._resolve(
                segments[0] + "/" + segments[1], segments[3], "/".join(segments[4:]), head
            )
            return
        self._send_error(HTTPStatus.NOT_FOUND, "Not Found", head)

    def _repo(self, repo_id: str, head: bool) -> Repo | None:
        """The repo if this request may see it; else sends the Hub's answer and returns None."""
        repo = self.server.repos.get(repo_id)
        hidden = repo is None or (repo.private and self._auth != "valid")
        if self._auth == "invalid" and hidden:
            # The real Hub rejects a bad token before looking at the repo (no X-Error-Code).
            self._send_error(HTTPStatus.UNAUTHORIZED, MSG_BAD_CREDENTIALS, head)
            return None
        if hidden:
            # 401 for anonymous callers, 404 for authenticated ones: the Hub never confirms a
            # private repo exists.
            status = HTTPStatus.NOT_FOUND if self._auth == "valid" else HTTPStatus.UNAUTHORIZED
            self._send_error(status, MSG_REPO_NOT_FOUND, head, code="RepoNotFound")
            return None
        return repo

    def _revision(self, repo: Repo, revision: str, head: bool) -> bool:
        if repo.resolves(revision) or revision in self.server.refs:
            return True
        self._send_error(
            HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", head, code="RevisionNotFound"
        )
        return False

    # ---- handlers

    def _model_info(
        self, repo_id: str, revision: str, query: dict[str, list[str]], head: bool
    ) -> None:
        repo = self._repo(repo_id, head)
        if repo is None or not self._revision(repo, revision, head):
            return
        with_blobs = query.get("blobs", ["false"])[-1] in TRUE_VALUES
        siblings = []
        for entry in repo.files.values():
            sibling: dict[str, Any] = {"rfilename": entry.path}
            if with_blobs:
                sibling.update(size=entry.size, blobId=entry.git_oid)
                if entry.lfs:
                    sibling["lfs"] = entry.tree_json()["lfs"]
            siblings.append(sibling)
        body = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],  # noqa: S324
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.commit,
            "lastModified": repo.last_modified,
            "createdAt": repo.last_modified,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in repo.files.values()),
        }
        self._send_json(HTTPStatus.OK, body, head)

    def _tree(
        self, repo_id: str, revision: str, sub: str, query: dict[str, list[str]], head: bool
    ) -> None:
        repo = self._repo(repo_id, head)
        if repo is None or not self._revision(repo, revision, head):
            return
        if sub and sub not in repo.directories:
            self._send_error(HTTPStatus.NOT_FOUND, "Entry not found", head, code="EntryNotFound")
            return
        recursive = query.get("recursive", ["false"])[-1] in TRUE_VALUES
        expand = query.get("expand", ["false"])[-1] in TRUE_VALUES
        prefix = f"{sub}/" if sub else ""

        def wanted(path: str) -> bool:
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix) :]

        items: list[dict[str, Any]] = []
        for directory in sorted(d for d in repo.directories if wanted(d)):
            oid = hashlib.sha1(f"{repo.commit}:{directory}".encode()).hexdigest()  # noqa: S324
            items.append({"type": "directory", "oid": oid, "size": 0, "path": directory})
        items.extend(repo.files[p].tree_json() for p in sorted(repo.files) if wanted(p))
        if expand:
            last_commit = {
                "id": repo.commit,
                "title": "fake hub snapshot",
                "date": repo.last_modified,
            }
            for item in items:
                item["lastCommit"] = last_commit
        self._send_json(HTTPStatus.OK, items, head)

    def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
        repo = self._repo(repo_id, head)
        if repo is None or not self._revision(repo, revision, head):
            return
        if not head and self.server.faults.should_fail(urlsplit(self.path).path):
            self._send_error(HTTPStatus.SERVICE_UNAVAILABLE, "Service unavailable (injected)", head)
            return
        entry = repo.files.get(path)
        if entry is None:
            self._send_error(
                HTTPStatus.NOT_FOUND,
                "Entry not found",
                head,
                code="EntryNotFound",
                commit=repo.commit,
            )
            return
        start, end = 0, entry.size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header is not None:
            parsed = _parse_range(range_header, entry.size)
            if parsed is None:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{entry.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parsed != (0, entry.size - 1) or entry.size == 0:
                start, end = parsed
                status = HTTPStatus.PARTIAL_CONTENT
        length = max(end - start + 1, 0)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{entry.etag}"')
        self.send_header("X-Repo-Commit", repo.commit)
        name = path.rsplit("/", 1)[-1]
        self.send_header("Content-Disposition", f"inline; filename*=UTF-8''{quote(name)}")
        if entry.lfs:
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(entry.size))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
        self.end_headers()
        if not head:
            self._stream(entry.disk_path, start, length)

    def _stream(self, disk_path: Path, start: int, length: int) -> None:
        throttle = self.server.faults.throttle
        # Throttled: small pieces, each sent no earlier than the rate allows.
        piece = max(min(CHUNK_SIZE, throttle // 10), 1) if throttle else CHUNK_SIZE
        started, sent = time.monotonic(), 0
        with disk_path.open("rb") as handle:
            handle.seek(start)
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(piece, remaining))
                if not chunk:
                    break
                if throttle:
                    delay = started + sent / throttle - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self.wfile.write(chunk)
                sent += len(chunk)
                remaining -= len(chunk)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range as inclusive (start, end); None when it cannot be satisfied.

    Multi-range requests are answered with the full content, as RFC 9110 allows.
    """
    match = RANGE_RE.match(header.strip())
    if match is None:
        return (0, size - 1)
    first, last = match.groups()
    if first == "" and last == "":
        return (0, size - 1)
    if first == "":
        suffix = int(last)
        if suffix == 0:
            return None
        return (max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return (start, min(end, size - 1))


# ---------------------------------------------------------------- CLI


def _parse_repo_arg(value: str) -> tuple[str, Path, bool]:
    repo_id, sep, location = value.partition("=")
    if not sep or not repo_id or not location:
        raise UsageError(f"--repo {value!r} is not of the form namespace/name=DIR[:private]")
    private = location.endswith(":private")
    if private:
        location = location[: -len(":private")]
    return repo_id, Path(location), private


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise UsageError(f"cannot read --token-file {path}: {error.strerror}") from None
    if not token:
        raise UsageError(f"--token-file {path} is empty")
    return token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve directories as Hugging Face Hub model repos."
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port; 0 picks a free one (default 8080)"
    )
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="ID=DIR[:private]",
        help="serve DIR as model repo ID; ':private' requires the token (repeatable)",
    )
    parser.add_argument("--token-file", type=Path, help="file holding the one valid access token")
    parser.add_argument("--log", type=Path, help="append one JSON line per request to this file")
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="NAME",
        help="also resolve NAME (a tag or branch) to each repo's commit (repeatable)",
    )
    parser.add_argument(
        "--fail-first",
        type=int,
        default=0,
        metavar="N",
        help="test only: answer 503 to the first N GETs of each /resolve/ path (default 0)",
    )
    parser.add_argument(
        "--throttle",
        type=int,
        default=0,
        metavar="BYTES_PER_SEC",
        help="test only: stream each file body at most this fast (default 0: full speed)",
    )
    return parser


def build_server(args: argparse.Namespace) -> HubServer:
    repos: dict[str, Repo] = {}
    for value in args.repo:
        repo_id, root, private = _parse_repo_arg(value)
        if repo_id in repos:
            raise UsageError(f"repo {repo_id} is given twice")
        repos[repo_id] = load_repo(repo_id, root, private)
    if not repos:
        raise UsageError("give at least one --repo")
    token = _read_token(args.token_file)
    if token is None and any(r.private for r in repos.values()):
        raise UsageError("a private repo needs --token-file")
    if args.fail_first < 0:
        raise UsageError(f"--fail-first must be 0 or more, got {args.fail_first}")
    if args.throttle < 0:
        raise UsageError(f"--throttle must be 0 or more bytes per second, got {args.throttle}")
    faults = Faults(args.fail_first, args.throttle)
    refs = frozenset(args.ref)
    try:
        return HubServer((args.bind, args.port), repos, token, RequestLog(args.log), faults, refs)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.bind}:{args.port}: {error.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        server = build_server(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"fake hub listening on http://{shown}:{port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    server.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
