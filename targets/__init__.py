"""Targets: an existing Redis deployment the lab did not start, described in a YAML file
(``targets.target``, schema ``target.schema.json``) and driven through the same ``api.Topology``
as the lab's own topologies; its node faults go through a driver (command templates, docker,
or ``targets.target_kubernetes``).

It sits above ``faults`` (a target heals through the fault records and the Toxiproxy client) and
below ``experiments`` (the runner opens a target for ``redislab run --target FILE``)."""
