"""The lab's one Docker Engine client (the Docker SDK, PyPI `docker`) and its errors in the lab's terms.

Container control (kill, stop, start, pause, inspect, logs, listing) goes through ``api()``: HTTP on
the daemon's socket, no `docker` process per call. `docker compose` stays on the CLI (the SDK has no
Compose). The client is made on first use (the daemon may be started later) and once per process.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests

from labcommon.errors import ContainerNotFound, DockerError

CALL_TIMEOUT_S = 60  # one Engine API call that takes longer means the daemon is stuck
CONNECT_TIMEOUT_S = 5  # the version probe made when the client is created
DAEMON_HINT = "is the Docker daemon healthy? `docker info`"

_lock = threading.Lock()
_client: tuple[int, docker.APIClient] | None = None  # (pid that made it, client)


def api() -> docker.APIClient:
    """The process's Engine API client (low-level: one HTTP request per call, no inspect before it).

    Raises ``DockerError`` when no daemon answers (nothing is cached then: a later call tries again).
    """
    global _client
    with _lock:
        if _client is None or _client[0] != os.getpid():  # a forked child makes its own connections
            with calling("connect to the Docker daemon"):
                client = docker.DockerClient.from_env(version="auto", timeout=CONNECT_TIMEOUT_S).api
            client.timeout = CALL_TIMEOUT_S  # the default for every later call
            _client = (os.getpid(), client)
        return _client[1]


def ping(timeout_s: float = 5.0) -> bool:
    """True when a Docker daemon answers `GET /_ping` within ``timeout_s`` seconds."""
    try:
        client = api()
        return client.get(f"{client.base_url}/_ping", timeout=timeout_s).ok
    except (DockerError, requests.RequestException):
        return False


@contextmanager
def calling(what: str, hint: str = DAEMON_HINT) -> Iterator[None]:
    """Map the SDK's typed errors raised inside to the lab's: ``what`` names the call for the message."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ContainerNotFound(f"{what}: {exc.explanation or 'no such container'}",
                                "is the topology up? `redislab status`") from exc
    except docker.errors.APIError as exc:  # the daemon answered and refused (e.g. the container is not running)
        raise DockerError(f"{what} failed: {exc.explanation or exc}", hint) from exc
    except (docker.errors.DockerException, requests.RequestException) as exc:  # no answer, or none in time
        raise DockerError(f"{what}: the Docker daemon did not answer ({type(exc).__name__})", hint) from exc


def containers(label: str, quiet: bool = False) -> list[dict]:
    """Containers (any state) carrying ``label`` ("key" or "key=value"), as the Engine lists them
    (``Id``, ``Names``, ``State``, ``Labels`` ...), in one request."""
    with calling(f"list containers labelled {label}"):
        return list(api().containers(all=True, quiet=quiet, filters={"label": label}))
