"""Serve an ASGI app with uvicorn on a thread of this process, for tests.

    with serving(app) as base_url:        # "http://127.0.0.1:PORT", once it accepts requests
        requests.get(base_url + "/health")
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT_S = 10.0  # for the server to start (lifespan included)
STOP_TIMEOUT_S = 10.0  # for it to finish its requests and stop


@contextmanager
def serving(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on an ephemeral port of ``host`` until the block exits; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # poll: uvicorn offers no "started" event
        if not server.started:
            raise RuntimeError(f"the HTTP server on port {port} did not start within {START_TIMEOUT_S:g} s "
                               f"(see its log above)")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
