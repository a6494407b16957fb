"""The app served by uvicorn on loopback, in a thread: for clients that need a real HTTP
server (the OpenAI SDK, LangChain)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from tests.support.net import free_port


@contextmanager
def serving(app: ASGIApp, timeout: float = 30, **config: Any) -> Iterator[str]:
    """http://127.0.0.1:PORT while `app` is served there (its lifespan included); `config`:
    more uvicorn.Config arguments (with ssl_certfile and ssl_keyfile: https://...)."""
    port = free_port()
    settings = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config
    )
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert thread.is_alive(), f"uvicorn stopped before serving on port {port}"
            assert time.monotonic() < deadline, f"uvicorn not serving after {timeout} s"
            time.sleep(0.02)
        scheme = "https" if config.get("ssl_certfile") else "http"
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
