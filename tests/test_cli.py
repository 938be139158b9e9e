"""The command line as people type it: global options before or after the command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import starter
import worker

ROOT = Path(__file__).resolve().parents[1]
NEEDS = {"force-exit": ["BTC/USDT"], "backtest": ["--data", "d"]}  # required arguments


def _commands() -> list[str]:
    # Read from starter.py's own parser, so a command added later is tested too.
    (sub,) = [
        a for a in starter.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return sorted(sub.choices)


def test_the_commands_are_found():
    assert {"start", "status", "stop", "force-exit", "stuck"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_config_before_or_after_every_command(command):
    rest = [command, *NEEDS.get(command, [])]
    # Before: the command's copy of the option (SUPPRESS) does not reset it to None.
    before = starter.parse_args(["--config", "a.toml", *rest])
    after = starter.parse_args([*rest, "--config", "a.toml"])
    assert before.config == after.config == Path("a.toml")
    assert before.command == after.command == command
    assert starter.parse_args(rest).config is None
    # The last one given wins, as with any repeated option.
    assert starter.parse_args(["--config", "a.toml", *rest, "--config", "b.toml"]).config == Path(
        "b.toml"
    )


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        starter.parse_args([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: starter.py {command}") and "--config" in out


def test_no_command_is_start_with_or_without_config():
    assert (starter.parse_args([]).command, starter.parse_args([]).config) == ("start", None)
    args = starter.parse_args(["--config", "a.toml"])
    assert (args.command, args.config) == ("start", Path("a.toml"))


def test_worker_takes_the_same_global_options():
    assert worker.parse_args(["--config", "w.toml"]).config == Path("w.toml")
    assert worker.parse_args([]).config is None


@pytest.mark.parametrize(
    "argv",
    [
        ["starter.py", "status", "--once", "--config", "{cfg}"],
        ["starter.py", "--config", "{cfg}", "status", "--once"],
        ["worker.py", "--config", "{cfg}"],
    ],
)
def test_the_config_file_given_is_the_one_read(tmp_path, argv):
    # A config the settings refuse ends the process before it connects anywhere: the error
    # names the file, so it is the one read, wherever --config was typed.
    cfg = tmp_path / "typed-by-hand.toml"
    cfg.write_text("max_trades = 0\n")
    done = subprocess.run(
        [sys.executable, *(a.format(cfg=cfg) for a in argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"config error in {cfg}" in done.stderr
    assert "MAX_TRADES (max_trades)" in done.stderr
