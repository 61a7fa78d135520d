"""The verbs' command lines: --help, the global options, exit statuses of usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpcdaemon import cli
from rpcdaemon.verbs.cli import VERBS


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: rpcdaemon {verb}" in out and "--config" in out


@pytest.mark.parametrize("verb", ["evacuate", "restore", "rebalance", "pause", "resume"])
def test_changing_verbs_take_dry_run_before_or_after(verb: str) -> None:
    parser = cli.build_parser()
    extra = ["net1"] if verb in ("evacuate", "restore") else []
    assert parser.parse_args(["--dry-run", verb, *extra]).dry_run is True
    assert parser.parse_args([verb, *extra, "--dry-run"]).dry_run is True
    assert parser.parse_args([verb, *extra]).dry_run is False


def config(tmp_path: Path) -> Path:
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(
        "[Daemon]\nplugins = L3Agent\ncloud = nowhere\n"
        f"pause_file = {tmp_path / 'pause.json'}\n[L3Agent]\n"
    )
    return path


def test_missing_config_is_exit_2_but_unknown_for_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.conf")
    assert cli.main(["-c", missing, "status"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["-c", missing, "check"]) == 3
    assert capsys.readouterr().out.startswith("UNKNOWN: cannot load")


def test_an_unreachable_daemon_named_on_the_command_line_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["-c", str(config(tmp_path)), "status", "--daemon", "127.0.0.1:1"]) == 2
    assert "no answer from http://127.0.0.1:1/status" in capsys.readouterr().err


def test_a_bad_cloud_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["-c", str(config(tmp_path)), "evacuate", "net1"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert cli.main(["-c", str(config(tmp_path)), "check"]) == 3


def test_pause_and_resume_need_no_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = str(config(tmp_path))
    assert cli.main(["-c", conf, "pause", "--for", "10m", "--reason", "rmq"]) == 0
    assert (tmp_path / "pause.json").exists()
    assert "local file" in capsys.readouterr().out  # says it binds this machine only
    assert cli.main(["-c", conf, "resume"]) == 0
    assert not (tmp_path / "pause.json").exists()
    assert cli.main(["-c", conf, "resume"]) == 0
    assert "was not paused" in capsys.readouterr().out


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from rpcdaemon.verbs.moves import Progress

    plain = io.StringIO()
    p = Progress(plain, 2, tty=False)
    p.step("disable agent a")
    p.step("add router r to agent b: HTTP 500", ok=False)
    assert plain.getvalue().splitlines() == [
        "[1/2] ok: disable agent a",
        "[2/2] FAILED: add router r to agent b: HTTP 500",
    ]
    assert p.failed == 1
    bar = Progress(io.StringIO(), 4, tty=True)
    bar.step("x")
    bar.close()
    err = capsys.readouterr().err
    assert err.startswith("\r[#######.......................] 1/4 x") and err.endswith("\n")


@pytest.mark.parametrize(
    "args", [["--grace", "soon"], ["--grace"], ["--bogus"], ["extra"], ["--listen", "x"]]
)
def test_check_usage_errors_are_unknown_not_critical(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check", *args]) == 3  # Nagios: 3 UNKNOWN (2 would read as CRITICAL)
    assert capsys.readouterr().out.startswith("UNKNOWN: usage error: ")
    assert cli.main(["status", *args]) == 2  # the other verbs keep exit 2
