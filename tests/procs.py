"""Helpers for tests that start the lab's CLI as a child process."""
from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for children a test will Ctrl-C: a background job of a
    non-interactive shell starts with SIGINT ignored, Python then installs no
    KeyboardInterrupt handler, and the child would never see the interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
