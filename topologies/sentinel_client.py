"""The lab's Sentinel client classes (``Topology.sentinel``): redis-py's ``Sentinel``, with the
discovered primary's address passed through a remap (a client group reaches the nodes through
proxies of its own) and, in the asyncio client, one discovery at a time.

redis-py asks the Sentinels for the primary (SENTINEL MASTERS, one Sentinel after another until
one names a primary that is not down) on every new connection and every reconnect. While a
primary is down every Sentinel is asked and every caller gets ``MasterNotFoundError``; callers
that retry (the lock's acquire retries 8-10 times in its 0.5 s) repeat that, each on its own.
Profiled on the Docker backend's ``lock-partition`` row, 19 % of the load generator's samples
were in ``discover_master`` while its sends fell up to 100 ms behind. Here concurrent callers
share the discovery in flight: each gets the answer of a query that began at most one round of
queries before it asked, as it would had it queued behind the others.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

Address = tuple[str, int]
Remap = Callable[[Address], Address]


def sentinel_class(base: type[Any], remap: Remap) -> type[Any]:
    """A subclass of redis-py's ``Sentinel`` (sync or asyncio: ``base``) whose discovered primary
    goes through ``remap``; the asyncio one shares concurrent discoveries (see the module doc)."""
    if asyncio.iscoroutinefunction(base.discover_master):
        class SharedDiscovery(base):
            _in_flight: dict[str, asyncio.Future[Address]]

            async def discover_master(self, service_name: str) -> Address:
                flights = self.__dict__.setdefault("_in_flight", {})
                flight = flights.get(service_name)
                if flight is None or flight.get_loop() is not asyncio.get_running_loop():  # none, or another loop's
                    flight = asyncio.ensure_future(super().discover_master(service_name))
                    flights[service_name] = flight
                    flight.add_done_callback(lambda f: _landed(flights, service_name, f))
                await asyncio.wait([flight])  # a caller that gives up (cancelled) leaves the discovery running
                error = flight.exception()
                if error is not None:
                    raise _own_copy(error)
                return remap(flight.result())
        return SharedDiscovery

    class Remapped(base):
        def discover_master(self, service_name: str) -> Address:
            return remap(super().discover_master(service_name))
    return Remapped


def _own_copy(error: BaseException) -> BaseException:
    """The shared discovery's error as an exception of this caller's own: callers annotate what they
    catch (``add_note``: an earlier attempt may have executed) and a shared object would carry one
    caller's notes into another's."""
    try:
        fresh = type(error)(*error.args)
    except Exception:  # noqa: BLE001 - an exception type that cannot be rebuilt from its args
        return error
    return fresh.with_traceback(error.__traceback__)


def _landed(flights: dict[str, asyncio.Future[Address]], service_name: str, flight: asyncio.Future[Address]) -> None:
    """A discovery finished: the next caller starts a new one. Its error is marked retrieved (every
    caller that waited got it; with none left asyncio would log it as never retrieved)."""
    if flights.get(service_name) is flight:
        del flights[service_name]
    if not flight.cancelled():
        with contextlib.suppress(BaseException):
            flight.exception()
