"""The API docs page is served from the app itself: no page points at the internet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import check_docs_page
import pytest
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.testclient import TestClient

from src.app import create_app
from src.settings import Settings
from tests.support.net import closed_port

BASE = "http://testserver"  # TestClient's origin
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
    "": ("text/html",),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app without models and with an unreachable database: pages need neither."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/app",
            "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


def html_pages(client: TestClient) -> dict[str, str]:
    """path -> body of every GET path without parameters (the app's own and its API's) that
    answers HTML."""
    paths = {
        getattr(route, "path", "")
        for route in client.app.routes  # type: ignore[attr-defined]
        if "GET" in (getattr(route, "methods", None) or set())
    }
    operations = check_docs_page.documented_operations(client.get("/openapi.json").json())
    paths |= {path for method, path in operations if method == "GET"}
    pages = {}
    for path in sorted(p for p in paths if p and "{" not in p):
        response = client.get(path)
        if response.headers.get("content-type", "").startswith("text/html"):
            pages[path] = response.text
    return pages


def docs_urls(client: TestClient) -> list[str]:
    response = client.get("/docs")
    assert response.status_code == 200, f"expected /docs to answer 200, got {response.status_code}"
    return check_docs_page.referenced_urls(response.text)


def test_no_html_page_refers_outside_the_host(client: TestClient) -> None:
    pages = html_pages(client)
    assert "/docs" in pages, f"expected /docs among the HTML pages, got {sorted(pages)}"
    foreign = {
        path: check_docs_page.foreign_urls(check_docs_page.referenced_urls(html), BASE)
        for path, html in pages.items()
    }
    assert foreign == {path: [] for path in pages}, f"pages referring outside the host: {foreign}"


def test_docs_assets_are_served_by_the_app_with_their_types(client: TestClient) -> None:
    answers = {}
    for url in docs_urls(client):
        path = urlsplit(urljoin(BASE, url)).path
        response = client.get(path)
        answers[path] = (response.status_code, response.headers.get("content-type", ""))
    wrong = {
        path: answer
        for path, answer in answers.items()
        if answer[0] != 200 or not answer[1].startswith(CONTENT_TYPES[Path(path).suffix])
    }
    assert wrong == {}, f"expected 200 and the file's content type, got {wrong}"
    suffixes = {Path(path).suffix for path in answers}
    assert {".js", ".css", ".png", ".json"} <= suffixes, f"/docs refers to {sorted(answers)}"


def test_docs_favicon_is_a_local_png(client: TestClient) -> None:
    [icon] = [url for url in docs_urls(client) if url.endswith((".png", ".ico"))]
    assert not urlsplit(icon).netloc, f"expected the favicon on the backend, got {icon}"
    response = client.get(icon)
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")


def test_redoc_is_off(client: TestClient) -> None:
    # ReDoc 2 always shows a logo from cdn.redoc.ly; /docs is the one docs page.
    response = client.get("/redoc")
    assert response.status_code == 404, f"expected /redoc to be off, got {response.status_code}"


# ---- the checker itself


def test_checker_finds_the_cdn_urls_of_fastapis_stock_docs_page() -> None:
    stock = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="stock").body).decode()
    foreign = check_docs_page.foreign_urls(check_docs_page.referenced_urls(stock), BASE)
    hosts = {urlsplit(url).hostname for url in foreign}
    assert hosts == {"cdn.jsdelivr.net", "fastapi.tiangolo.com"}, f"found only {foreign}"


def test_checker_finds_urls_in_scripts_and_styles() -> None:
    html = (
        "<style>body { background: url('//cdn.example/bg.png') }</style>"
        "<script>const ui = X({url: '//cdn.example/openapi.json', next: '/local'})</script>"
        '<img srcset="/a.png 1x, https://img.example/b.png 2x">'
    )
    foreign = check_docs_page.foreign_urls(check_docs_page.referenced_urls(html), BASE)
    assert sorted(set(foreign)) == [
        "//cdn.example/bg.png",
        "//cdn.example/openapi.json",
        "https://img.example/b.png",
    ]


def test_checker_without_chromium_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_docs_page, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(check_docs_page.DocsPageError, match=r"apt-get install chromium"):
        check_docs_page.render(f"{BASE}/docs")


SEARCH = {
    "operationId": "search",
    "parameters": [{"name": "q"}],
    "responses": {
        "200": {"content": {"application/json": {}}},
        "404": {"content": {"application/json": {}}},
        "503": {"description": "no body"},
    },
}


def test_checker_names_what_an_opened_operation_does_not_show() -> None:
    dom = (
        '<tr data-param-name="q"></tr>'
        '<tr class="response" data-code="200"><td><pre class="highlight-code"></pre></td></tr>'
        '<tr class="response" data-code="404"><td>no example</td></tr>'
    )
    assert check_docs_page.opened_operation_problems(dom, SEARCH) == [
        "search: response 404 shows no example body",
        "search: response 503 is not shown",
    ]


def test_checker_keeps_the_pages_requests_not_chromiums_own() -> None:
    def start(url: str, **params: str) -> dict[str, object]:
        return {"type": 7, "params": {"url": url, **params}}

    netlog = {
        "constants": {"logEventTypes": {"URL_REQUEST_START_JOB": 7}},
        "events": [
            start("https://update.googleapis.com/x", initiator="not an origin"),
            start(f"{BASE}/docs", initiator="not an origin", request_type="main frame"),
            start("https://cdn.example/ui.js", initiator=BASE, request_type="other"),
            {"type": 7, "params": {"net_error": -105}},
        ],
    }
    assert check_docs_page.page_requests(netlog) == [f"{BASE}/docs", "https://cdn.example/ui.js"]
