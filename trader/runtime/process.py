"""Process exit for the command-line entry points."""

from __future__ import annotations

import os
import sys


def hard_exit(code: int) -> None:
    """Flush stdio and end the process without interpreter finalization.

    The Temporal SDK's Rust core keeps native threads that can call back into Python while
    the interpreter finalizes; a short-lived command (``starter.py start --no-worker``)
    then sometimes aborts with "PyGILState_Release: thread state must be current" (exit
    -6) after its work is done. Everything that matters has been awaited by now, so the
    process skips finalization instead.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
