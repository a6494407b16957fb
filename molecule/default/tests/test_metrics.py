"""The metrics as an operator's Prometheus and status.yml see them: the real Prometheus of
the session (conftest.prometheus) scraping the host's published metrics port, a known load,
and the counters' increase; status.yml's last five minutes. (The cut-over seen in the
series: test_redeploy.)"""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

import pytest
from runs import ansible_playbook, api_key, client_key_option, playbook, record, sh

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
REQUESTS = 24
EMBEDDINGS_OK = 'sum(nica_http_requests_total{route="/v1/embeddings",method="POST",status="200"})'
INPUTS = f'sum(nica_embeddings_request_inputs_count{{model="{MODEL}"}})'
# N requests of 2 inputs each, from the host to its published port, with the key in the
# file the third argument names (runs.client_key_option).
LOAD = (
    "import json, sys, urllib.request\n"
    "headers = {'Content-Type': 'application/json',\n"
    "           'Authorization': 'Bearer ' + open(sys.argv[3]).read().strip()}\n"
    "for n in range(int(sys.argv[1])):\n"
    "    body = json.dumps({'model': sys.argv[2], 'input': [f'metrics {n}', 'load']}).encode()\n"
    "    request = urllib.request.Request('http://127.0.0.1:8000/v1/embeddings', data=body,\n"
    "                                     headers=headers)\n"
    "    assert urllib.request.urlopen(request, timeout=30).status == 200\n"
)


def settled(prometheus, query: str, wanted: float, timeout: float = 30) -> float:
    """The query's value once it reaches `wanted` (scrapes are every second), or after
    the timeout whatever it is."""
    deadline = time.monotonic() + timeout
    value = prometheus.value(query)
    while value != wanted and time.monotonic() < deadline:
        time.sleep(1)
        value = prometheus.value(query)
    return value


@pytest.fixture(scope="module")
def load(host: Any, prometheus) -> dict[str, Any]:
    time.sleep(3)  # the last scrape holds whatever came before
    before = {query: prometheus.value(query) for query in (EMBEDDINGS_OK, INPUTS)}
    key_file = client_key_option(host, api_key("read")).split()[-1]
    sh(host, f"python3 -c {shlex.quote(LOAD)} {REQUESTS} {MODEL} {key_file}")
    after = {
        EMBEDDINGS_OK: settled(prometheus, EMBEDDINGS_OK, before[EMBEDDINGS_OK] + REQUESTS),
        INPUTS: settled(prometheus, INPUTS, before[INPUTS] + REQUESTS),
    }
    status = ansible_playbook("metrics-status", playbook("status"))
    return {"before": before, "after": after, "status": status}


def test_prometheus_scrapes_the_serving_slot_through_the_published_port(host, prometheus):
    slot = record(host)["slot"]
    assert prometheus.value(f'up{{slot="{slot}"}}') == 1
    info = prometheus.api("query", query=f'nica_release_info{{slot="{slot}"}}')
    assert [series["metric"]["release"] for series in info] == [record(host)["release"]], info


def test_the_requests_counter_grew_by_the_requests_sent(load):
    grown = load["after"][EMBEDDINGS_OK] - load["before"][EMBEDDINGS_OK]
    assert grown == REQUESTS, f"sent {REQUESTS} embeddings requests, the counter grew by {grown}"


def test_the_inputs_histogram_counted_each_request(load):
    grown = load["after"][INPUTS] - load["before"][INPUTS]
    assert grown == REQUESTS, f"{REQUESTS} requests, nica_embeddings_request_inputs grew by {grown}"


def test_status_shows_the_last_five_minutes(load):
    run = load["status"]
    assert run.rc == 0, run.tail()
    figures = re.search(r"last 5 min: ([0-9.]+) requests/s, (\d+) errors", run.output)
    assert figures, f"status.yml printed no figures: {run.tail()}"
    assert float(figures[1]) > 0 and figures[2] == "0", figures[0]
    assert re.search(r"p50 \d+ ms, p95 \d+ ms, queue \d+ now", run.output), run.tail()
