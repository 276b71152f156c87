"""A Chaos Toolkit extension: the lab's faults as actions, its views of a topology and of a
recorded history as probes (python provider: ``module`` / ``func`` / ``arguments``).

    {"type": "action", "name": "kill the primary",
     "provider": {"type": "python", "module": "redislab.ctk.actions", "func": "inject_fault",
                  "arguments": {"kind": "kill", "target": "primary"}}}

Every activity acts on the topology ``redislab up`` started (``topologies.api.current``), or
on the deployment a target file describes (argument ``target_file``, see ``targets.target``).
``redislab export-ctk EXPERIMENT`` writes a whole experiment (:mod:`redislab.ctk.export`).
"""
