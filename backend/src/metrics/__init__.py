"""Prometheus metrics of the backend (docs/observability.md lists them).

Every uvicorn worker records into prometheus_client's multiprocess files in
PROMETHEUS_MULTIPROC_DIR (instruments.py, http.py); one metrics process started by the image's
entrypoint (server.py) serves them all in one scrape on its own port, with what it reads at
scrape time: each worker's memory and CPU (procfs.py), the documents per collection, the
release and slot, readiness (collectors.py), and a JSON summary of the last five minutes
(summary.py).
"""
