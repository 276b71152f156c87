"""What every layer of the lab shares, and nothing else: the errors it reports as one line
(``labcommon.errors``) and the poller with a deadline (``labcommon.poll.wait_until``).

It sits below ``topologies``, ``faults``, ``patterns``, ``experiments`` and ``redislab`` and
imports none of them (the contracts in pyproject.toml, checked by ``make lint``)."""
