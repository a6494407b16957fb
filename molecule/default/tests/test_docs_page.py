"""The API docs page on the deployed host: served by the backend, nothing from outside.

The page's URLs are found by scripts/check_docs_page.py, which also renders it in
headless Chromium on the controller (Debian's `chromium` package).
"""

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import REPO

BACKEND = "http://127.0.0.1:8000"  # as seen from the host
PUBLISHED = f"http://127.0.0.1:{os.environ.get('NICA_DEMO_PORT', '18000')}"  # from the controller
CHECK_SCRIPT = REPO / "scripts" / "check_docs_page.py"
CHROMIUM = Path("/usr/bin/chromium")
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
    "": ("text/html",),
}


def _load_checker():
    """scripts/check_docs_page.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_docs_page", CHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def fetch(host, url):
    """GET from the host itself: (status, content type, body); bodies other than HTML as ''."""
    script = (
        "import json, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout=30)\n"
        "except urllib.error.HTTPError as e:\n"
        "    r = e\n"
        "kind = r.headers.get('content-type', '')\n"
        "body = r.read().decode() if kind.startswith('text/html') else ''\n"
        "print(json.dumps({'status': r.status, 'type': kind, 'body': body}))\n"
    )
    result = host.run(f"python3 -c {shlex.quote(script)}")
    assert result.rc == 0, f"GET {url} failed on the host: {result.stderr.strip()}"
    answer = json.loads(result.stdout)
    return answer["status"], answer["type"], answer["body"]


@pytest.fixture(scope="module")
def docs_html(host):
    status, kind, body = fetch(host, f"{BACKEND}/docs")
    assert (status, kind.split(";")[0]) == (200, "text/html"), f"/docs answered {status} {kind}"
    return body


def test_docs_page_refers_only_to_the_backend(docs_html):
    foreign = checker.foreign_urls(checker.referenced_urls(docs_html), BACKEND)
    assert foreign == [], f"/docs refers outside the host to {foreign}"


def test_docs_assets_are_served_by_the_backend(host, docs_html):
    answers = {}
    for url in checker.referenced_urls(docs_html):
        path = urlsplit(urljoin(BACKEND, url)).path
        status, kind, _ = fetch(host, f"{BACKEND}{path}")
        answers[path] = (status, kind)
    wrong = {
        path: answer
        for path, answer in answers.items()
        if answer[0] != 200 or not answer[1].startswith(CONTENT_TYPES[Path(path).suffix])
    }
    assert wrong == {}, f"expected 200 and the file's content type, got {wrong}"
    assert {".js", ".css", ".png"} <= {Path(p).suffix for p in answers}, sorted(answers)


def test_redoc_is_off(host):
    status, _, _ = fetch(host, f"{BACKEND}/redoc")
    assert status == 404, f"expected /redoc to be off (ReDoc loads a CDN logo), got {status}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found on the controller")
def test_docs_page_renders_in_chromium_on_the_controller():
    result = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), PUBLISHED],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"scripts/check_docs_page.py {PUBLISHED} exited {result.returncode}:\n"
        f"{result.stdout}{result.stderr}"
    )
