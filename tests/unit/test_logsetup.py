"""Log configuration: one destination, per-plugin levels, reopen for logrotate."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcdaemon import logsetup
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, DumpSettings, Settings

WATCHED = (
    "",
    "rpcdaemon",
    "rpcdaemon.plugins.dump",
    "rpcdaemon.dump",
    "rpcdaemon.l3agent",
    "rpcdaemon.plugins.l3agent",
    "kombu",
    "amqp",
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in WATCHED}
    hook = threading.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    threading.excepthook = hook
    logging.captureWarnings(False)


def settings(tmp_path: Path, *, foreground: bool = False) -> Settings:
    return Settings(
        path="x.conf",
        daemon=DaemonSettings(
            plugins=("L3Agent", "Dump"),
            logfile=str(tmp_path / "rpcdaemon.log"),
            loglevel="INFO",
            foreground=foreground,
        ),
        l3=AgentPluginSettings(name="L3Agent", loglevel="WARNING"),
        dump=DumpSettings(loglevel="DEBUG"),
    )


def test_per_plugin_levels_and_one_file(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    logging.getLogger("rpcdaemon.plugins.dump").debug("dump-debug")
    logging.getLogger("rpcdaemon.runtime.services").debug("daemon-debug")
    logging.getLogger("rpcdaemon.runtime.services").info("daemon-info")
    logsetup.plugin_logger("L3Agent", "executor").info("l3-info")
    logsetup.plugin_logger("L3Agent", "executor").warning("l3-warning")
    logging.getLogger("kombu.connection").debug("kombu-debug")
    text = (tmp_path / "rpcdaemon.log").read_text()
    assert "dump-debug" in text and "daemon-info" in text and "l3-warning" in text
    assert "daemon-debug" not in text and "l3-info" not in text and "kombu-debug" not in text
    line = next(x for x in text.splitlines() if "daemon-info" in x)
    stamp, _pid, level, name = line.split()[:4]
    assert stamp[4] == "-" and "T" in stamp and (stamp[-6] in "+-")
    assert (level, name) == ("INFO", "rpcdaemon.runtime.services")


def test_reopen_writes_a_new_file_after_a_rename(tmp_path: Path) -> None:
    handle = logsetup.configure(settings(tmp_path))
    log = logging.getLogger("rpcdaemon.test")
    log.info("before")
    path = tmp_path / "rpcdaemon.log"
    path.rename(tmp_path / "rpcdaemon.log.1")
    handle.reopen()
    log.info("after")
    assert "before" in (tmp_path / "rpcdaemon.log.1").read_text()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_an_unwritable_logfile_is_a_config_error(tmp_path: Path) -> None:
    s = settings(tmp_path)
    bad = Settings(
        path="x.conf",
        daemon=DaemonSettings(logfile=str(tmp_path / "no" / "such" / "dir.log")),
    )
    with pytest.raises(ConfigError) as err:
        logsetup.configure(bad)
    assert (err.value.section, err.value.option) == ("Daemon", "logfile")
    assert s.daemon.logfile  # the good one still configures
    logsetup.configure(s)


def test_foreground_logs_to_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(settings(tmp_path, foreground=True))
    logging.getLogger("rpcdaemon.x").info("to-stderr")
    assert "to-stderr" in capfd.readouterr().err
    assert not (tmp_path / "rpcdaemon.log").exists()


# -- safe records (issue 9) -----------------------------------------------------------------


def log_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "rpcdaemon.log").read_text(encoding="utf-8").splitlines()


def test_a_newline_in_a_host_name_cannot_forge_a_line(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    forged = "net1\n2026-11-24T06:00:00.000+00:00 1 INFO rpcdaemon [MainThread] all good"
    logging.getLogger("rpcdaemon.x").warning("agent on %s is dead", forged)
    lines = log_lines(tmp_path)
    assert len(lines) == 1
    assert lines[0].endswith(
        "agent on net1\\n2026-11-24T06:00:00.000+00:00 1 INFO rpcdaemon "
        "[MainThread] all good is dead"
    )


def test_ansi_escapes_and_separators_are_escaped(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    logging.getLogger("rpcdaemon.x").warning("host %s", "\x1b[31mred\x1b[0m\r\u2028\u202e\x00")
    raw = (tmp_path / "rpcdaemon.log").read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\r" not in raw and "\u2028" not in raw and "\x00" not in raw
    assert raw.rstrip("\n").endswith("host \\x1b[31mred\\x1b[0m\\r\\u2028\\u202e\\x00")


def test_a_lone_surrogate_does_not_lose_the_line(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    log = logging.getLogger("rpcdaemon.x")
    log.warning("host %s is dead", "net\ud800")
    log.warning("next line")
    lines = log_lines(tmp_path)
    assert [x.split("] ", 1)[1] for x in lines] == ["host net\\ud800 is dead", "next line"]


def _recurse(n: int) -> int:  # alternating frames: Python's "repeated" folding cannot help
    return (_recurse(n + 1) if n % 2 else _other(n + 1)) + 1


def _other(n: int) -> int:
    return _recurse(n + 1) + 1


def test_a_recursion_error_traceback_is_a_few_lines(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    try:
        _recurse(0)
    except RecursionError:
        logging.getLogger("rpcdaemon.x").exception("observe failed")
    lines = log_lines(tmp_path)
    assert len(lines) <= 3 * (logsetup.HEAD_FRAMES + logsetup.TAIL_FRAMES) + 6, len(lines)
    assert lines[1] == "Traceback (most recent call last):"
    assert "test_a_recursion_error_traceback_is_a_few_lines" in lines[2]  # the first frame
    assert any(x.strip().endswith("frames omitted ...") for x in lines)
    omitted = next(x for x in lines if "frames omitted" in x)
    assert int(omitted.split()[1]) > 900
    assert lines[-1].startswith("RecursionError: maximum recursion depth exceeded")


def test_a_chained_exception_keeps_its_chain_and_masks_its_text(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    try:
        try:
            raise ConnectionError("amqp://neutron:hunter2@rabbit1:5672// refused")
        except ConnectionError as exc:
            raise RuntimeError("bus down\nFORGED LINE") from exc
    except RuntimeError:
        logging.getLogger("rpcdaemon.x").exception("failed")
    text = (tmp_path / "rpcdaemon.log").read_text()
    assert "hunter2" not in text and "neutron:***@rabbit1:5672" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "\nFORGED LINE" not in text and "RuntimeError: bus down\\nFORGED LINE" in text


def test_secrets_in_log_text_are_masked(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path))
    log = logging.getLogger("rpcdaemon.x")
    log.info("bus %s", "rabbit://u:pw1@h1:5672,u:pw2@h2:5672/")
    log.warning("rejected %r", {"host": "net1", "note": "password=pw3 X-Auth-Token: pw4"})
    log.info("GET /v2.0/agents?token=pw5 Authorization: Bearer pw6")
    text = (tmp_path / "rpcdaemon.log").read_text()
    assert not [s for s in ("pw1", "pw2", "pw3", "pw4", "pw5", "pw6") if s in text], text
    assert "u:***@h1:5672,u:***@h2:5672/" in text and "'host': 'net1'" in text


def test_the_log_file_is_created_0640_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        handle = logsetup.configure(settings(tmp_path))
        path = tmp_path / "rpcdaemon.log"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        path.rename(tmp_path / "rpcdaemon.log.1")
        handle.reopen()
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # logrotate's new file too
    finally:
        os.umask(old)


def test_json_lines_parse_and_carry_the_action_fields(tmp_path: Path) -> None:
    logsetup.configure(settings(tmp_path), log_format="json")
    log = logsetup.plugin_logger("L3Agent", "executor")
    fields = logsetup.action_fields(
        "L3Agent", "add_router", "r1", "a2", "agent a1 dead\x1b", outcome="ok"
    )
    log.warning("moving router %s to %s", "r1", "a2", extra=fields)
    log.warning("plain\nrecord")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    docs = [json.loads(line) for line in log_lines(tmp_path)]
    assert len(docs) == 3
    first = docs[0]
    assert first["message"] == "moving router r1 to a2"
    assert (first["plugin"], first["action"], first["resource"], first["agent"]) == (
        "L3Agent",
        "add_router",
        "r1",
        "a2",
    )
    assert first["reason"] == "agent a1 dead\\x1b" and first["outcome"] == "ok"
    assert first["level"] == "WARNING" and first["logger"] == "rpcdaemon.l3agent.executor"
    assert first["ts"][4] == "-" and isinstance(first["pid"], int)
    assert docs[1]["message"] == "plain\\nrecord" and "action" not in docs[1]
    assert docs[2]["traceback"].endswith("ValueError: boom")


def test_an_unknown_log_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        logsetup.configure(settings(tmp_path), log_format="xml")
    assert (err.value.section, err.value.option) == ("Daemon", "log_format")


def test_journald_gets_the_priority_on_every_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    st = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    logsetup.configure(settings(tmp_path, foreground=True))
    log = logging.getLogger("rpcdaemon.x")
    log.setLevel(logging.DEBUG)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    try:
        raise ValueError("v")
    except ValueError:
        log.exception("x")
    lines = capfd.readouterr().err.splitlines()
    assert [x[:3] for x in lines[:5]] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert len(lines) > 6 and all(x.startswith("<3>") for x in lines[5:])


def test_no_journald_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    logsetup.configure(settings(tmp_path, foreground=True))
    logging.getLogger("rpcdaemon.x").warning("w")
    assert capfd.readouterr().err.startswith("20")
