"""Experiment engine: history, open-loop workload, statistics, checks, report.

Interfaces (see each module's docstring for units and details):

* ``history.HistoryWriter(path)``: ``clock()`` (s since t0), ``write_op(Op)``,
  ``event(kind, **fields)`` -- faults write ``fault_inject``/``fault_heal``
  themselves (``faults.events.EventLog(writer)``: fields ``fault``, ``label``),
  samplers ``server_info``/``breaker``/``role``, ``topology_events`` the
  topology's own ``topology`` events, the runner
  ``final_state`` (what the checks read back). ``read_history(path)`` returns a
  ``History``: ``ops``, ``events``, ``workload`` (the workload's own ops after the
  warm-up: what every figure is computed over), ``cycles()`` (the fault windows,
  inject to heal), ``final_state()``. ``Op.kind`` is ``workload``, ``step`` or ``worker``.
* ``workload.run_workload(op, WorkloadConfig, writer, on_phase=None)``: open-loop;
  ``op(client_id, rng) -> OpResult | (name, args, value)``; wrap client calls in
  ``attempt(name, args, awaitable, timeout=..., read=...)``.
* ``checks.run_checks(specs, history, final_state)`` / ``checks.REGISTRY``:
  ``check(history, final_state, params) -> CheckResult``: a claim (held / violated /
  unknown) or a measurement (no verdict); ``checks.worst`` combines the claims.
* ``analysis.analyze(history, config)``: the result document (figures per cycle with
  their spread, claims, measurements, verdict).
* ``report.render_run(run_dir, reproduce=..., interrupted=None)`` writes
  ``result.json``, ``timeline.png``, ``report.md``, ``report.html``;
  ``report.write_index(results_dir)`` writes ``runs.md`` / ``runs.html``.
* ``catalogue.run_catalogue(...)`` runs the catalogue; ``answer`` builds the answer
  page (``index.md`` / ``index.html``) and ``summary.json`` from its results.
"""
