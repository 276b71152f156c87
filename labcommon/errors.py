"""Errors the lab reports to users as one clear line (never a traceback)."""
from __future__ import annotations


class LabError(Exception):
    """A failure the user can act on: what went wrong, what is accepted, a hint.

    ``str(err)`` is the single line the CLI prints; ``details`` (for example
    the last log lines of a node that did not come up) is printed below it.
    """

    def __init__(self, message: str, hint: str = "", details: str = "") -> None:
        self.message = message
        self.hint = hint
        self.details = details
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UnknownNameError(LabError):
    """A name (topology, backend, node, fault ...) that is not among the known ones."""

    def __init__(self, what: str, name: str, known: list[str] | tuple[str, ...], hint: str = "") -> None:
        super().__init__(f"unknown {what} {name!r}; accepted: {', '.join(known)}", hint)


class NotReadyError(LabError):
    """Something did not become healthy before its deadline."""


class DockerError(LabError):
    """A Docker Engine call failed: no daemon answered, or it refused (e.g. the container is not running)."""


class ContainerNotFound(DockerError):
    """The Docker daemon has no container by that name."""
