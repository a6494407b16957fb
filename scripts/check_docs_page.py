#!/usr/bin/env python3
"""Check the backend's API docs page in headless Chromium, as seen from an air-gapped host.

Loads BASE/docs in Debian's chromium with every host name but the backend's made
unresolvable, so a page that needs a CDN stays blank here as it would there. Then, from
the rendered DOM and Chromium's network log:
- Swagger UI lists every operation of BASE/openapi.json;
- each operation, opened, shows its parameters, request body and every documented
  response, with an example body where the document gives one;
- the page requested nothing outside BASE, and its rendered links point nowhere else.

Prints one line per problem and exits 1, else one `ok:` line and exits 0; exits 2 when
chromium is missing or BASE does not answer.

    scripts/check_docs_page.py http://127.0.0.1:18000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Attributes whose value is a URL the browser may fetch or follow (xmlns is a name, not one).
URL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "formaction", "poster", "data"}
# In inline scripts: a quoted string that is a URL or an absolute path.
SCRIPT_URL = re.compile(r"""(['"`])((?:https?:)?//[^'"`\s]*|/[^/'"`\s][^'"`\s]*)\1""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
# Anywhere in a served page's source: an absolute http(s) URL.
ABSOLUTE_URL = re.compile(r"""https?://[^\s'"`<>()]+""", re.IGNORECASE)


class DocsPageError(Exception):
    """Why the check could not run, in one line."""


class _References(HTMLParser):
    """Collects the URLs a page refers to: attributes, inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                self.urls.append(value.strip())
            elif name == "srcset":
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name == "style":
                self.urls += CSS_URL.findall(value)
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.urls += [match[1] for match in SCRIPT_URL.findall(data)]
        elif self._in == "style":
            self.urls += CSS_URL.findall(data)


def referenced_urls(html: str) -> list[str]:
    """Every URL `html` refers to: src/href-like attributes, CSS url(), inline-script strings
    that are URLs or absolute paths, and any absolute http(s) URL in its source."""
    parser = _References()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(parser.urls + ABSOLUTE_URL.findall(html)))


def rendered_urls(dom: str) -> list[str]:
    """The URLs of a rendered DOM's elements (not its text, nor SVG namespace names)."""
    parser = _References()
    parser.feed(dom)
    parser.close()
    return parser.urls


def foreign_urls(urls: Iterable[str], base: str) -> list[str]:
    """Those of `urls` that lead to another origin than `base` (relative ones resolved)."""
    origin = _origin(base)
    foreign = []
    for url in urls:
        absolute = urljoin(base, url)
        if urlsplit(absolute).scheme in ("data", "blob", "javascript", "about"):
            continue
        if _origin(absolute) != origin:
            foreign.append(url)
    return foreign


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, f"{parts.hostname}:{parts.port or default}"


@dataclass(frozen=True)
class Rendered:
    dom: str
    requests: list[str]  # every URL the page (not Chromium itself) asked for


def render(url: str, timeout: float = 60) -> Rendered:
    """`url` in headless Chromium, every host but its own unresolvable; the DOM once the page
    settled (virtual time: scripts, fetches and timers run first), and its requests."""
    if not CHROMIUM.exists():
        raise DocsPageError(f"{CHROMIUM} not found (apt-get install chromium)")
    host = urlsplit(url).hostname
    with tempfile.TemporaryDirectory(prefix="docs-page-") as tmp:
        netlog = Path(tmp) / "netlog.json"
        command = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp}/profile",
            # As on an air-gapped host: no name resolves but the backend's.
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise DocsPageError(f"chromium did not finish {url} in {timeout:.0f} s") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DocsPageError(f"chromium exited {result.returncode} on {url}: {last}")
        return Rendered(result.stdout, page_requests(json.loads(netlog.read_text())))


def page_requests(netlog: dict[str, Any]) -> list[str]:
    """The URLs a net log shows the page asking for: the main frame and what its documents
    initiated (Chromium's own update and account calls have no initiating origin)."""
    start_job = netlog["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in netlog["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        if params.get("request_type") == "main frame" or params.get("initiator", "").startswith(
            ("http://", "https://")
        ):
            urls.append(str(params["url"]))
    return urls


class _Operations(HTMLParser):
    """(METHOD, path) of each operation Swagger UI rendered (an `opblock` with a data-path)."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: set[tuple[str, str]] = set()
        self._method = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        if "opblock" in classes:
            methods = [c.removeprefix("opblock-") for c in classes if c.startswith("opblock-")]
            self._method = next((m for m in methods if m in HTTP_METHODS), "").upper()
        if "opblock-summary-path" in classes and self._method:
            self.listed.add((self._method, values.get("data-path", "")))


def listed_operations(dom: str) -> set[tuple[str, str]]:
    parser = _Operations()
    parser.feed(dom)
    parser.close()
    return parser.listed


def documented_operations(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> the operation object, for every operation of an OpenAPI document."""
    return {
        (method.upper(), path): operation
        for path, item in openapi.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def deep_link(operation: dict[str, Any]) -> str:
    """The /docs fragment that opens one operation (Swagger UI's deepLinking)."""
    tag = (operation.get("tags") or ["default"])[0].replace(" ", "_")
    return f"#/{tag}/{operation['operationId']}"


class _Opened(HTMLParser):
    """What an opened operation shows: parameter names, a request body example, and for each
    response row its code and whether it shows an example body."""

    def __init__(self) -> None:
        super().__init__()
        self.parameters: set[str] = set()
        self.request_example = False
        self.responses: dict[str, bool] = {}
        self._code = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        if "data-param-name" in values:
            self.parameters.add(values["data-param-name"])
        if "body-param__example" in classes:
            self.request_example = True
        if tag == "tr" and "response" in classes and "data-code" in values:
            self._code = values["data-code"]
            self.responses[self._code] = False
        if self._code and "highlight-code" in classes:
            self.responses[self._code] = True


def opened_operation_problems(dom: str, operation: dict[str, Any]) -> list[str]:
    """What the opened operation fails to show of its parameters, body and responses."""
    shown = _Opened()
    shown.feed(dom)
    shown.close()
    name = operation["operationId"]
    problems = []
    for parameter in operation.get("parameters", []):
        if parameter["name"] not in shown.parameters:
            problems.append(f"{name}: parameter {parameter['name']!r} is not shown")
    if "requestBody" in operation and not shown.request_example:
        problems.append(f"{name}: the request body example is not shown")
    for code, response in operation.get("responses", {}).items():
        if code not in shown.responses:
            problems.append(f"{name}: response {code} is not shown")
        elif response.get("content") and not shown.responses[code]:
            problems.append(f"{name}: response {code} shows no example body")
    return problems


def fetch_openapi(base: str) -> dict[str, Any]:
    url = f"{base}/openapi.json"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (http only)
            document: dict[str, Any] = json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
        raise DocsPageError(f"{url} did not answer with JSON: {error}") from None
    return document


def check(base: str) -> tuple[list[str], int]:
    """(problems, number of operations) of BASE/docs."""
    base = base.rstrip("/")
    documented = documented_operations(fetch_openapi(base))
    page = render(f"{base}/docs")
    problems = []
    listed = listed_operations(page.dom)
    if not listed:
        problems.append(f"{base}/docs lists no operation: the page stayed blank")
    problems += [f"not listed: {m} {p}" for m, p in sorted(documented.keys() - listed)]
    problems += [f"requested outside {base}: {u}" for u in foreign_urls(page.requests, base)]
    problems += [
        f"the page links outside {base}: {u}" for u in foreign_urls(rendered_urls(page.dom), base)
    ]
    if listed:
        for operation in documented.values():
            opened = render(f"{base}/docs{deep_link(operation)}")
            problems += opened_operation_problems(opened.dom, operation)
    return problems, len(documented)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the backend's base URL, e.g. http://127.0.0.1:18000")
    args = parser.parse_args(argv)
    try:
        problems, count = check(args.base)
    except DocsPageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        return 1
    base = args.base.rstrip("/")
    print(f"ok: {base}/docs shows all {count} operations, and nothing from outside {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
