"""Experiment engine: history, open-loop workload, statistics, checks, report.

Interfaces (see each module's docstring for units and details):

* ``history.HistoryWriter(path)``: ``clock()`` (s since t0), ``write_op(Op)``,
  ``event(kind, **fields)`` -- faults emit ``fault_inject``/``fault_heal``
  (fields ``fault``, ``label``), samplers ``server_info``/``breaker``/``role``,
  the runner ``final_state`` (what the checks read back). ``read_history(path)``
  returns a ``History`` (``ops``, ``events``, ``fault_windows()``, ``final_state()``).
* ``workload.run_workload(op, WorkloadConfig, writer, on_phase=None)``: open-loop;
  ``op(client_id, rng) -> OpResult | (name, args, value)``; wrap client calls in
  ``attempt(name, args, awaitable, timeout=...)``.
* ``checks.run_checks(specs, history, final_state)`` / ``checks.REGISTRY``:
  ``check(history, final_state, params) -> CheckResult``; ``checks.worst``.
* ``report.render_run(run_dir, reproduce=..., interrupted=None)`` writes
  ``result.json``, ``timeline.png``, ``report.md``; ``report.write_index(results_dir)``.
"""
