"""/docs in headless Chromium (Debian's package) against the backend under uvicorn.

Chromium resolves no host name but the backend's, as on an air-gapped host, so a page
that needs a CDN stays blank here. Skipped without /usr/bin/chromium (apt-get install chromium).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import check_docs_page
import pytest
from check_docs_page import CHROMIUM, Rendered

from tests.support.docs_server import serving
from tests.support.runners import BACKEND_DIR

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"
)
CHECK_SCRIPT = BACKEND_DIR.parent / "scripts" / "check_docs_page.py"
CDN_BUNDLE = (
    "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"  # FastAPI's default
)
KEY_OPERATIONS = {("POST", "/v1/embeddings"), ("GET", "/v1/search")}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image's entry point, src.main:app, under uvicorn; its base URL."""
    with serving(tmp_path_factory.mktemp("hf-home")) as base:
        yield base


@pytest.fixture(scope="module")
def openapi(backend: str) -> dict[str, Any]:
    return check_docs_page.fetch_openapi(backend)


@pytest.fixture(scope="module")
def docs(backend: str) -> Rendered:
    return check_docs_page.render(f"{backend}/docs")


def run_check(base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), base],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_docs_lists_every_operation(docs: Rendered, openapi: dict[str, Any]) -> None:
    listed = check_docs_page.listed_operations(docs.dom)
    assert listed >= KEY_OPERATIONS, f"expected {sorted(KEY_OPERATIONS)} listed, got {listed}"
    documented = set(check_docs_page.documented_operations(openapi))
    assert listed == documented, f"not listed: {documented - listed}; extra: {listed - documented}"


def test_docs_requests_nothing_outside_the_backend(docs: Rendered, backend: str) -> None:
    assert any(url.endswith(".js") for url in docs.requests), f"no script fetched: {docs.requests}"
    foreign = check_docs_page.foreign_urls(docs.requests, backend)
    assert foreign == [], f"the page asked hosts other than {backend} for {foreign}"


def test_rendered_docs_link_nowhere_else(docs: Rendered, backend: str) -> None:
    foreign = check_docs_page.foreign_urls(check_docs_page.rendered_urls(docs.dom), backend)
    assert foreign == [], f"the rendered page refers outside {backend} to {foreign}"


def test_check_script_passes_on_the_backend(backend: str) -> None:
    # The script also opens each operation: its parameters, body and responses must show.
    result = run_check(backend)
    assert result.returncode == 0, f"expected exit 0, got {result.returncode}:\n{result.stdout}"
    assert result.stdout.startswith(f"ok: {backend}/docs shows all "), result.stdout


def test_check_script_fails_on_a_docs_page_that_needs_a_cdn(tmp_path: Path) -> None:
    with serving(tmp_path, app="tests.support.docs_server:cdn_docs_app") as stock:
        result = run_check(stock)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}: {result.stdout}"
    assert lines[0] == f"{stock}/docs lists no operation: the page stayed blank", lines
    assert f"requested outside {stock}: {CDN_BUNDLE}" in lines, lines
