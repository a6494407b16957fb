"""The app served by uvicorn on loopback, in a thread: for clients that need a real HTTP
server (the OpenAI SDK, LangChain)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.net import free_port


@contextmanager
def serving(app: FastAPI, timeout: float = 30) -> Iterator[str]:
    """http://127.0.0.1:PORT while `app` is served there (its lifespan included)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert thread.is_alive(), f"uvicorn stopped before serving on port {port}"
            assert time.monotonic() < deadline, f"uvicorn not serving after {timeout} s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
