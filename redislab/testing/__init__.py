"""The lab inside your own pytest suite (the ``redislab`` pytest plugin's objects).

``redis_lab`` yields a :class:`RedisLab`; ``redis_lab.recorder()`` a :class:`Recorder`;
the session's topology is kept by a :class:`LabSession`. See the README, "The lab as a
pytest plugin".
"""
from redislab.testing.lab import ActiveFault, Endpoints, RedisLab
from redislab.testing.recorder import Recorder
from redislab.testing.session import LabSession

__all__ = ["ActiveFault", "Endpoints", "LabSession", "Recorder", "RedisLab"]
