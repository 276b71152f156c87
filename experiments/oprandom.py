"""The per-operation RNG, without its per-operation cost.

Every operation gets ``random.Random(seed)`` for its own seed (see
``experiments.workload``: the same seed gives the same choices whatever the
timing). Seeding Mersenne Twister costs about 5 µs, and building a ``Random``
seeds it once more: a tenth of the generator's own CPU per operation at
10,000 ops/s. :class:`OpRandom` draws exactly what ``random.Random(seed)``
draws, but seeds itself on its first draw (an operation that draws nothing
pays nothing), and :class:`RandomPool` reuses instances across operations.
"""
from __future__ import annotations

import _random
import random
from typing import Any

_random_c = _random.Random.random
_getrandbits_c = _random.Random.getrandbits


class OpRandom(random.Random):
    """``random.Random(seed)``, seeded at its first draw. :meth:`arm` gives it a new seed.

    Every draw of ``random.Random`` goes through ``random()`` or ``getrandbits()``;
    the first one seeds, then binds the C methods on the instance, so later draws
    cost what they cost on a plain ``Random``. (A method that fetched ``self.random``
    before the first draw, as ``gauss`` does, keeps calling the class's method: it
    seeds only once.)"""

    _armed = False  # a seed is pending

    def arm(self, seed: int) -> None:
        """Draw from now on as ``random.Random(seed)`` would (seeding is deferred)."""
        self._seed = seed
        self._armed = True
        self.gauss_next = None  # gauss() caches its second value: not this operation's
        d = self.__dict__
        d.pop("random", None)
        d.pop("getrandbits", None)

    def _seed_now(self) -> None:
        self._armed = False
        super().seed(self._seed)
        d = self.__dict__
        d["random"] = _random_c.__get__(self)
        d["getrandbits"] = _getrandbits_c.__get__(self)

    def random(self) -> float:
        if self._armed:
            self._seed_now()
        return _random_c(self)

    def getrandbits(self, k: int) -> int:
        if self._armed:
            self._seed_now()
        return _getrandbits_c(self, k)

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._seed = a
        self._seed_now()
        if version != 2:
            super().seed(a, version)

    def getstate(self) -> tuple[Any, ...]:
        if self._armed:
            self._seed_now()
        return super().getstate()

    def setstate(self, state: tuple[Any, ...]) -> None:
        self._armed = False
        super().setstate(state)


class RandomPool:
    """Reusable :class:`OpRandom` instances: ``take(seed)`` for an operation, ``give(rng)``
    once it has finished (an op function must not keep its RNG beyond its return)."""

    def __init__(self) -> None:
        self._free: list[OpRandom] = []

    def take(self, seed: int) -> OpRandom:
        rng = self._free.pop() if self._free else OpRandom()
        rng.arm(seed)
        return rng

    def give(self, rng: OpRandom) -> None:
        self._free.append(rng)
