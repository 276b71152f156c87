"""`redislab`: the lab's command line. Make targets are thin wrappers over it.

Every user error is one line on stderr (what was wrong, what is accepted, a hint)
and exit status 2; never a traceback. Ctrl-C and SIGTERM unwind through the same
clean-up paths (anything half-started is torn down).
"""
from __future__ import annotations

import json
import shlex
import signal
import sys
import tempfile
import threading
import time
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labcommon.errors import LabError, UnknownNameError
from topologies import api, dockerd, runlock
from topologies.home import password
from topologies.spec import PASSWORD_ENV, TOPOLOGIES

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
NODE_ACTIONS = ("kill", "stop", "start", "pause", "resume")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """redis-failure-lab: what happens to my app when Redis goes down?"""


@cli.command()
@click.argument("topology", metavar="|".join(TOPOLOGIES))
@click.option("--backend", default="auto", show_default=True, metavar="|".join(api.BACKENDS),
              help="docker (Compose), local (processes), or auto: docker when a daemon answers, else local")
@click.option("--timeout", "timeout_s", default=api.UP_TIMEOUT_S, show_default=True, type=float,
              help="seconds to wait for the topology to become healthy")
def up(topology: str, backend: str, timeout_s: float) -> None:
    """Start a topology behind Toxiproxy; returns when it is healthy."""
    started = time.monotonic()
    with runlock.hold(f"redislab up {topology} --backend {backend}"):
        topo = api.up(topology, backend=backend, timeout_s=timeout_s)
    out.print(f"[green]{topo.name}[/] is up on the [bold]{topo.backend.name}[/] backend "
              f"({time.monotonic() - started:.1f} s)")
    _print_status(topo.status())
    out.print(f"password: ${PASSWORD_ENV} (`eval $(redislab env)` sets it and REDISCLI_AUTH in your shell)")


@cli.command()
@click.option("--all", "all_", is_flag=True, help="also remove leftovers of every topology on both backends")
def down(all_: bool) -> None:
    """Stop the topology and remove its containers, networks, volumes and processes."""
    from faults.heal import after_down
    removed = api.down(all_=all_) + after_down()
    daemon = dockerd.stop_if_owned()
    if daemon.stopped:
        removed.append("Docker daemon started by the lab")
    out.print("removed: " + (", ".join(removed) if removed else "nothing was running"), markup=False)
    if daemon.reason:
        out.print(f"left the Docker daemon the lab started running: {daemon.reason}", highlight=False, markup=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--target", "target_file", default=None, metavar="FILE",
              help="an existing deployment described in a target file (see: redislab target check)")
def status(as_json: bool, target_file: str | None) -> None:
    """The running topology, its nodes, their roles and addresses."""
    topo = _open_target(target_file) if target_file else api.current()
    data: dict[str, Any] = topo.status() if topo else {"topology": None}
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif topo is None:
        out.print(f"no topology is up (start one: redislab up {'|'.join(TOPOLOGIES)})")
    else:
        _print_status(data)


@cli.command()
@click.argument("action", metavar="|".join(NODE_ACTIONS))
@click.argument("node")
def node(action: str, node: str) -> None:
    """Control one node: kill (SIGKILL), stop/start (graceful), pause/resume (SIGSTOP/SIGCONT)."""
    if action not in NODE_ACTIONS:
        raise LabError(f"unknown node action {action!r}; accepted: {', '.join(NODE_ACTIONS)}")
    topo = _require_topology()
    getattr(topo, action)(node)
    out.print(f"{action}: {node} is now {topo.backend.node_state(node)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--duration", "duration_s", type=float, default=None,
              help="stop after this many seconds (default: until Ctrl-C)")
def events(as_json: bool, duration_s: float | None) -> None:
    """Stream what the topology says about itself: Sentinel +sdown/+odown/+switch-master/...,
    every node's role (polled every 0.1 s), as lines or JSON; experiments record the same."""
    from experiments.topology_events import TopologyEvents
    if duration_s is not None and duration_s <= 0:
        raise LabError(f"--duration {duration_s:g} must be above 0 seconds", "or leave it out to stream until Ctrl-C")
    topo = _require_topology()
    printer = EventPrinter(as_json)
    with TopologyEvents(topo, printer):
        stop = threading.Event()
        stop.wait(duration_s)  # None: until Ctrl-C (KeyboardInterrupt unwinds through the context manager)


class EventPrinter:
    """Prints topology events as they arrive, one per line (called from several threads)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._lock = threading.Lock()

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        wall = time.time()
        with self._lock:
            if self.as_json:
                click.echo(json.dumps({"wall": round(wall, 3), "kind": kind, **fields}), nl=True)
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"
                click.echo(f"{stamp}  {fields.get('source', '?'):<12} {fields.get('event', kind):<16} "
                           f"{fields.get('detail', '')}")
            sys.stdout.flush()


@cli.command()
def env() -> None:
    """Print shell exports for the lab password: eval $(redislab env)."""
    pw = shlex.quote(password())
    click.echo(f"export {PASSWORD_ENV}={pw} REDISCLI_AUTH={pw}")


@cli.command("docker-daemon")
@click.argument("action", metavar="start|stop")
def docker_daemon(action: str) -> None:
    """Start a Docker daemon if none answers (as root), or stop the one the lab started."""
    if action == "start":
        started = dockerd.ensure_running()
        out.print("Docker daemon started by the lab" if started else "a Docker daemon already answers")
    elif action == "stop":
        daemon = dockerd.stop_if_owned()
        out.print("stopped the lab's Docker daemon" if daemon.stopped else
                  f"left the Docker daemon the lab started running: {daemon.reason}" if daemon.reason else
                  "the lab owns no Docker daemon", highlight=False, markup=False)
    else:
        raise LabError(f"unknown action {action!r}; accepted: start, stop")


@cli.command("faults")
def faults_list() -> None:
    """List the faults, their targets and parameters (with units)."""
    from faults.kinds import FAULTS
    click.echo("usage: redislab fault TYPE --target T [name=value ...] [--duration S]\n")
    for kind, cls in FAULTS.items():
        click.echo(f"{kind}: {cls.summary}")
        click.echo(f"    target: {cls.target_help}")
        for p in cls.params:
            unit = f" [{p.unit}]" if p.unit else ""
            accepted = f" one of {'|'.join(p.choices)}" if p.choices else (
                f" {p.low:g}..{p.high:g}" if p.low is not None else "")
            default = f", default {p.default}" if p.default is not None else ", required"
            click.echo(f"    {p.name}{unit}:{accepted}{default}. {p.help}")


@cli.command()
@click.argument("kind", metavar="TYPE")
@click.option("--target", required=True, help="node, link or partition sides (see `redislab faults`)")
@click.option("--duration", "duration_s", type=float, default=None,
              help="seconds to hold the fault, then heal (default: leave it until `redislab heal`)")
@click.option("--i-own-this-pid", "vouch_pid", is_flag=True,
              help="client_pause/client_kill: signal a pid the lab did not start (you vouch it is yours)")
@click.argument("params", nargs=-1, metavar="[name=value ...]")
def fault(kind: str, target: str, duration_s: float | None, vouch_pid: bool, params: tuple[str, ...]) -> None:
    """Inject a fault; with --duration hold it and heal (Ctrl-C heals early)."""
    from faults import kinds
    from faults.injector import FaultInjector
    values: dict[str, str] = {}
    for item in params:
        if "=" not in item:
            raise LabError(f"parameter {item!r} is not name=value", "see `redislab faults` for the names")
        name, value = item.split("=", 1)
        if name in values:
            raise LabError(f"parameter {name!r} is given twice", "give each parameter once")
        values[name] = value
    if duration_s is not None and not 0 < duration_s <= 86_400:
        raise LabError(f"--duration {duration_s:g} is out of range; accepted: 0 < S <= 86400 seconds")
    f = kinds.make(kind, target, **values)
    if vouch_pid:
        if not isinstance(f, kinds.ClientPause):
            raise LabError(f"--i-own-this-pid applies to client_pause and client_kill, not {kind}")
        f.vouched = True
    injector = FaultInjector(_require_topology())
    if duration_s is None:
        injector.inject(f)
        out.print(f"injected {f!r}; heal with: redislab heal", markup=False)
    else:
        out.print(f"injecting {f!r} for {duration_s:g} s (Ctrl-C heals now)", markup=False)
        injector.hold(f, duration_s)
        out.print(f"healed {f!r}", markup=False)


@cli.command()
@click.option("--target", "target_file", default=None, metavar="FILE",
              help="an existing deployment described in a target file (see: redislab target check)")
def heal(target_file: str | None) -> None:
    """Undo every fault from any state: toxics, disabled proxies, partitions, paused or stopped nodes,
    paused lab clients; clears stale records. Works with no topology up too. With --target: the lab's
    toxics and disabled proxies, stopped/paused nodes (driver), and the lab's keys under the prefix."""
    from faults.injector import heal_all
    if target_file:
        topo = _open_target(target_file)
        done = heal_all(topo)
        deleted = topo.delete_lab_keys()
        if deleted:
            done.append(f"deleted {deleted} lab keys under {topo.key_prefix!r}")
    else:
        done = heal_all(api.current())
    out.print("\n".join(done) if done else "nothing to heal: everything was clean", highlight=False, markup=False)


@cli.command("list")
@click.option("--target", "target_file", default=None, metavar="FILE",
              help="an existing deployment described in a target file (see: redislab target check)")
def list_experiments(target_file: str | None) -> None:
    """The experiments, one line each; with --target, which can run on it (and why not)."""
    from experiments.registry import EXPERIMENTS
    from experiments.target_fit import runnable
    topo = _open_target(target_file, need_password=False) if target_file else None
    for name, exp in EXPERIMENTS.items():
        if topo is None:
            click.echo(f"{name:24} [{exp.pattern} on {exp.topology}] {exp.summary}")
            continue
        ok, why = runnable(topo, exp)
        click.echo(f"{name:32} {'runnable' if ok else 'not runnable: ' + why}")


@cli.group()
def target() -> None:
    """Existing deployments described in a target file (schema: targets/target.schema.json)."""


@target.command("check")
@click.argument("file")
def target_check(file: str) -> None:
    """Validate a target file: schema and consistency; one line per problem found first."""
    from targets.target import load
    t = load(file)
    note = ""
    if t.password_env:
        import os
        note = "" if t.password_env in os.environ else f"; note: {t.password_env} is not set in this shell"
    out.print(f"{file}: ok ({t.kind}, {len(t.nodes)} nodes, {len(t.sentinels)} Sentinels, key prefix "
              f"{t.key_prefix!r}, faults allowed: {', '.join(sorted(t.allowed_faults)) or 'none'}){note}",
              highlight=False, markup=False)


def _open_target(path: str, need_password: bool = True) -> Any:
    from targets.target import TargetTopology, load
    t = load(path)
    if not need_password and t.password_env:
        import dataclasses
        t = dataclasses.replace(t, password_env=None)  # listing needs no connection
    return TargetTopology(t)


@cli.command()
@click.argument("experiment")
@click.option("--topology", default=None, help="topology to run on (default: the experiment's own)")
@click.option("--backend", default="auto", show_default=True, metavar="|".join(api.BACKENDS))
@click.option("--profile", default="quick", show_default=True,
              help="quick (CI: 1 s warm-up + 2 s baseline + 2 x (4 s fault + 5 s recovery)) or full "
                   "(2 + 8 + 3 x (10 + 12) s)")
@click.option("--duration", "duration_s", type=float, default=None, help="total seconds (phases scale)")
@click.option("--rate", type=float, default=None, help="target operations per second (all clients)")
@click.option("--cycles", type=int, default=None, help="fault cycles (default: the profile's)")
@click.option("--repeat", type=int, default=1, show_default=True,
              help="runs, with seeds SEED..SEED+N-1; figures are pooled over every cycle of every run")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True,
              help="generator processes, each running a share of the clients (parallel scenarios only)")
@click.option("--out", "out_dir", default="results", show_default=True, help="results directory")
@click.option("--json", "as_json", is_flag=True,
              help="print the result summary as JSON on stdout (one object per run, a list with --repeat)")
@click.option("--target", "target_file", default=None, metavar="FILE",
              help="an existing deployment described in a target file (see: redislab target check)")
def run(experiment: str, topology: str | None, backend: str, profile: str, duration_s: float | None,
        rate: float | None, cycles: int | None, repeat: int, seed: int, workers: int, out_dir: str,
        as_json: bool, target_file: str | None) -> None:
    """Run an experiment: load, fault cycles, history, claims, measurements, report."""
    from experiments.answer import LABELS, spread_text
    from experiments.catalogue import MAX_REPEAT
    from experiments.report import one_line, run_summary
    from experiments.runner import RunRequest, run_experiment
    if not 1 <= repeat <= MAX_REPEAT:
        raise LabError(f"--repeat {repeat} is out of range; accepted: 1..{MAX_REPEAT}")
    _require_writable_dir(out_dir)
    results, summaries = [], []
    with runlock.hold(f"redislab run {experiment}"):
        for n in range(repeat):
            request = RunRequest(experiment, topology, backend, profile, duration_s, rate, seed + n,
                                 out_dir, cycles=cycles, workers=workers, target=target_file)
            run_dir = run_experiment(request, console=err)
            result = json.loads((run_dir / "result.json").read_text())
            results.append(result)
            (err if as_json else out).print(f"{one_line(result)}  report: {run_dir / 'report.html'}  "
                                            f"plot: {run_dir / 'timeline.png'}", highlight=False, markup=False)
            if as_json:
                summaries.append(run_summary(result, run_dir))
    if repeat > 1:
        for key in ("availability_during", "p99_during_ms", "failover_s", "recover_s"):
            (err if as_json else out).print(f"over {repeat} runs, {LABELS[key]}: {spread_text(results, key)}",
                                            highlight=False)
    if as_json:
        click.echo(json.dumps(summaries[0] if repeat == 1 else summaries, indent=2))


@cli.command("export-ctk")
@click.argument("experiment")
@click.option("--out", "out_file", default=None, metavar="FILE", help="write here (default: stdout)")
@click.option("--profile", default="quick", show_default=True, help="phase lengths: quick or full")
@click.option("--cycles", type=int, default=None, help="fault cycles (default: the profile's)")
def export_ctk(experiment: str, out_file: str | None, profile: str, cycles: int | None) -> None:
    """Write EXPERIMENT as a Chaos Toolkit experiment (JSON; run it with `chaos run FILE`)."""
    from redislab.ctk.export import experiment as ctk_experiment
    text = json.dumps(ctk_experiment(experiment, profile, cycles), indent=2) + "\n"
    if out_file is None:
        click.echo(text, nl=False)
        return
    try:
        with open(out_file, "w") as f:
            f.write(text)
    except OSError as exc:
        raise LabError(f"--out {out_file}: cannot write it ({exc.strerror or exc})",
                       "give a writable file path") from None
    err.print(f"wrote {out_file} (run it: chaos run {shlex.quote(out_file)})", highlight=False, markup=False)


@cli.command()
@click.argument("run_dir", required=False)
@click.option("--out", "out_dir", default="results", show_default=True, help="results directory (for the index)")
def report(run_dir: str | None, out_dir: str) -> None:
    """Re-render a run's report from its history (default: the latest run)."""
    from pathlib import Path

    from experiments.report import render_run, write_index
    root = Path(out_dir)
    _require_writable_dir(out_dir, create=False)
    if run_dir is None:
        runs = sorted((p for p in root.glob("*/history.jsonl")), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise LabError(f"no runs in {root}/", "run one: redislab run cache-primary-kill")
        path = runs[-1].parent
    else:
        path = Path(run_dir)
        if not (path / "history.jsonl").exists():
            raise LabError(f"{path} holds no history.jsonl", f"give a run directory under {root}/")
    render_run(path)
    write_index(root)
    out.print(f"re-rendered {path / 'report.md'}", markup=False)


@cli.command()
@click.argument("run_a", metavar="RUN_DIR_A")
@click.argument("run_b", metavar="RUN_DIR_B")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def compare(run_a: str, run_b: str, as_json: bool) -> None:
    """Does run B lie within run A's spread? Two runs of the same experiment, figure by figure (per
    fault cycle, A's range widened by a stated margin) and claim by claim. Exit 0 when no figure is
    outside and the verdicts agree, 1 otherwise."""
    from experiments.compare import compare_runs, lines
    result = compare_runs(run_a, run_b)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in lines(result):
            out.print(line, highlight=False, markup=False)
    if not result.matches:
        sys.exit(1)


@cli.command()
@click.option("--profile", default="quick", show_default=True,
              help="quick (55 short runs) or full (~110 runs, every topology)")
@click.option("--backend", default="auto", show_default=True, metavar="|".join(api.BACKENDS))
@click.option("--out", "out_dir", default="results", show_default=True, help="results directory")
@click.option("--only", default=None, help="comma-separated patterns or showcases to run (default: all)")
@click.option("--repeat", type=int, default=1, show_default=True, help="runs per row (seeds 1..N), pooled")
@click.option("--workers", type=int, default=1, show_default=True,
              help="generator processes for the rows whose scenario runs in several (the others use one)")
@click.option("--target", "target_file", default=None, metavar="FILE",
              help="run the rows that can run on an existing deployment described in a target file (the others "
                   "are listed as skipped, with the reason)")
def demo(profile: str, backend: str, out_dir: str, only: str | None, repeat: int, workers: int,
         target_file: str | None) -> None:
    """Run the catalogue: every pattern through kill / latency / partition, and the showcases."""
    from pathlib import Path

    from experiments.catalogue import MAX_REPEAT, plan, run_catalogue, verify
    sections = None
    known = sorted({i.section for i in plan(profile)})  # an unknown profile fails here
    if only is not None:
        sections = {s.strip() for s in only.split(",") if s.strip()}
        unknown = sorted(sections - set(known)) or ([] if sections else [only])
        full_only = [u for u in unknown if profile != "full" and u in {i.section for i in plan("full")}]
        if full_only:
            raise LabError(f"--only {full_only[0]}: that showcase runs with the full profile only",
                           f"use --profile full --only {full_only[0]}, or `redislab run EXPERIMENT` for one "
                           "variant (`redislab list`)")
        if unknown:
            raise UnknownNameError("section for --only", unknown[0], known)
    if not 1 <= repeat <= MAX_REPEAT:
        raise LabError(f"--repeat {repeat} is out of range; accepted: 1..{MAX_REPEAT}")
    api.resolve_backend(backend)  # an unknown backend fails here, before anything starts
    from experiments.generator import MAX_WORKERS
    if not 1 <= workers <= MAX_WORKERS:
        raise LabError(f"--workers {workers} is out of range; accepted: 1..{MAX_WORKERS}",
                       "e.g. --workers 2 on a 2-core machine")
    _require_writable_dir(out_dir)
    command = "redislab demo " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "redislab demo"
    skipped: list[str] = []
    with runlock.hold(f"redislab demo --profile {profile}"):
        outcomes, index = run_catalogue(profile, backend, out_dir, console=err, repeat=repeat, command=command,
                                        only=lambda i: sections is None or i.section in sections, workers=workers,
                                        target=target_file, skipped=skipped)
    if skipped:
        out.print(f"skipped {len(skipped)} experiment(s) the target cannot run:", highlight=False)
        for line in skipped:
            out.print(f"  {line}", highlight=False, markup=False)
    verdicts = [o.results[-1]["verdict"] if o.results else "error" for o in outcomes]
    out.print(f"{len(outcomes)} rows: " + ", ".join(f"{verdicts.count(v)} {v}" for v in
                                                   ("held", "violated", "unknown", "error") if verdicts.count(v)))
    for o in outcomes:
        if o.error is not None:
            out.print(f"  error in {o.item.experiment} on {o.item.topology}: {o.error}", highlight=False)
    out.print(f"answers: {index} (and {index.with_suffix('.html')})")
    problems = verify(Path(out_dir))
    if problems or "error" in verdicts:
        raise LabError("the demo is incomplete: " + "; ".join(problems[:5] or ["some runs errored"]),
                       f"see {index}")


def _require_writable_dir(raw: str, create: bool = True) -> None:
    """``--out``: a directory this process can create (if ``create``) and write; LabError otherwise."""
    from pathlib import Path
    if not raw.strip() or "\0" in raw:
        raise LabError(f"--out {raw!r} is not a directory name", "e.g. --out results")
    path = Path(raw)
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise LabError(f"--out {raw} is not a directory", "give a directory, e.g. --out results")
        with tempfile.NamedTemporaryFile(dir=path, prefix=".redislab-write-test-"):
            pass
    except OSError as exc:
        raise LabError(f"--out {raw}: cannot {'create or ' if create else ''}write there ({exc.strerror or exc})",
                       "give a directory you can write to, e.g. --out results") from None


def _require_topology() -> api.Topology:
    topo = api.current()
    if topo is None:
        raise LabError("no topology is up", f"start one: redislab up {'|'.join(TOPOLOGIES)}")
    return topo


def _print_status(data: dict[str, Any]) -> None:
    table = Table(title=f"{data['topology']} ({data['backend']})")
    for col in ("node", "role", "address", "direct", "state"):
        table.add_column(col)
    for n in data["nodes"]:
        table.add_row(n["name"], n["role"], f"{n['host']}:{n['port']}", n["direct"], n["state"])
    out.print(table)
    out.print(f"Toxiproxy API: {data['toxiproxy_api']}")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        cli.main(standalone_mode=False)
    except LabError as exc:
        err.print(f"[red]error:[/] {escape(exc.line())}", highlight=False)
        if exc.details:
            err.print(exc.details, highlight=False, markup=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err.print("interrupted; cleaned up")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted; cleaned up")
        sys.exit(130)
    except click.ClickException as exc:
        err.print(f"[red]error:[/] {escape(exc.format_message())} (see: redislab --help)", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
