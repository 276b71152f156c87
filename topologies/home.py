"""Where the lab keeps its state: run directories, logs, the password, ownership records."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labcommon.errors import LabError
from topologies.spec import PASSWORD_ENV


def lab_home() -> Path:
    """``$REDISLAB_HOME``, else ``$XDG_STATE_HOME/redislab`` (``~/.local/state/redislab``)."""
    raw = os.environ.get("REDISLAB_HOME")
    if raw:
        home = Path(raw)
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        home = base / "redislab"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"the lab home {home} cannot be created ({exc.strerror or exc})",
                       "set REDISLAB_HOME to a directory you can write to") from None
    return home


def password() -> str:
    """The Redis password: ``$REDISLAB_PASSWORD``, else one generated once and kept (mode 0600)
    in the lab home, so no secret is ever committed and the shell can read it back."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    path = lab_home() / "password"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        f.write(text)


class StateFile:
    """A small JSON record in the lab home (which topology is up, pids, ownership)."""

    def __init__(self, name: str) -> None:
        self.path = lab_home() / name

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return None

    def write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")  # one per writer: no clash
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock (flock on a sibling ``.lock`` file) across a read-modify-write,
        so processes updating the same record never lose each other's changes."""
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Read, apply ``change`` (returns the new content, or None to remove the file), write; atomically
        with respect to other ``update`` calls. Returns the new content."""
        with self.locked():
            new = change(self.read() or {})
            if new:
                self.write(new)
            else:
                self.clear()
            return new

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
