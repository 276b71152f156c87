"""The Toxiproxy API through `toxiproxy-python`, with its two rough edges wrapped.

toxiproxy-python keeps the server address in class attributes of ``APIConsumer``
and sends requests without a timeout (a hung server hangs the lab). This module
is the only place that touches either: it points ``APIConsumer`` at the lab's
API and routes the library's ``requests`` calls through a shim that always
passes a timeout.
"""
from __future__ import annotations

from typing import Any

import requests
import toxiproxy.api
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import NotFound
from toxiproxy.proxy import Proxy

from labcommon.errors import LabError, UnknownNameError
from topologies.api import Topology
from topologies.spec import HOST, TOXIPROXY_API_PORT

REQUEST_TIMEOUT_S = 5.0  # every Toxiproxy API call gives up after this


class ToxiproxyGone(LabError):
    """Nothing listens on the Toxiproxy API (connection refused): the server is gone, and every
    toxic and disabled proxy went with it. (A server that is slow to answer is a plain LabError.)"""


class ToxiproxyHung(LabError):
    """The Toxiproxy API accepted the connection but did not answer in time (a wedged or
    stopped server: see ``Topology.restart_proxy``)."""


class _RequestsWithTimeout:
    """Stands in for the ``requests`` module inside toxiproxy.api: same calls, with a timeout."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def get(self, **kwargs: Any) -> requests.Response:
        return requests.get(timeout=self.timeout_s, **kwargs)

    def post(self, **kwargs: Any) -> requests.Response:
        return requests.post(timeout=self.timeout_s, **kwargs)

    def delete(self, **kwargs: Any) -> requests.Response:
        return requests.delete(timeout=self.timeout_s, **kwargs)


toxiproxy.api.requests = _RequestsWithTimeout(REQUEST_TIMEOUT_S)


class ToxiproxyAPI:
    """The lab's Toxiproxy server (127.0.0.1:18474): proxies, toxics, reset."""

    def __init__(self, host: str = HOST, port: int = TOXIPROXY_API_PORT) -> None:
        toxiproxy.api.APIConsumer.host = host
        toxiproxy.api.APIConsumer.port = port
        self.server = Toxiproxy()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except requests.ConnectionError as exc:
            if isinstance(exc, requests.ConnectTimeout):
                raise ToxiproxyHung(f"Toxiproxy API did not answer ({what}): ConnectTimeout",
                                    "is a topology up? `redislab status`") from exc
            raise ToxiproxyGone(f"Toxiproxy is not running: nothing listens on its API ({what})",
                                "is a topology up? `redislab status`") from exc
        except requests.Timeout as exc:
            raise ToxiproxyHung(f"Toxiproxy API did not answer ({what}): {type(exc).__name__}",
                                "is a topology up? `redislab status`") from exc
        except requests.RequestException as exc:
            raise LabError(f"Toxiproxy API did not answer ({what}): {type(exc).__name__}",
                           "is a topology up? `redislab status`") from exc

    def proxy(self, name: str) -> Proxy:
        proxy = self._call("get proxy", self.server.get_proxy, name)
        if proxy is None:
            raise UnknownNameError("link", name, sorted(self.proxy_names()))
        return proxy

    def proxy_names(self) -> list[str]:
        return list(self._call("list proxies", self.server.proxies).keys())

    def add_toxic(self, proxy: str, name: str, type_: str, stream: str, attributes: dict[str, int],
                  toxicity: float = 1.0) -> None:
        p = self.proxy(proxy)
        self._call("add toxic", p.add_toxic, name=name, type=type_, stream=stream, toxicity=toxicity,
                   attributes=attributes)

    def remove_toxic(self, proxy: str, name: str) -> None:
        try:
            self._call("remove toxic", self.proxy(proxy).destroy_toxic, name)
        except NotFound:
            pass  # already gone (e.g. after a reset): healing is idempotent

    def toxics(self) -> dict[str, list[str]]:
        """proxy name -> names of its toxics."""
        out = {}
        for name, proxy in self._call("list proxies", self.server.proxies).items():
            out[name] = list(self._call("list toxics", proxy.toxics).keys())
        return out

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        p = self.proxy(proxy)
        self._call("toggle proxy", p.enable if enabled else p.disable)

    def disabled(self) -> list[str]:
        return [n for n, p in self._call("list proxies", self.server.proxies).items() if not p.enabled]

    def reset(self) -> None:
        """Re-enable every proxy and remove every toxic."""
        self._call("reset", self.server.reset)


def for_topology(topo: Topology) -> ToxiproxyAPI:
    """The Toxiproxy API in front of ``topo``'s nodes (the lab's own, or the one a target file declares)."""
    return ToxiproxyAPI(*topo.toxiproxy_address())
