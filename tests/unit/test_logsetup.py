"""Log configuration: one destination, per-plugin levels, reopen for logrotate."""

from __future__ import annotations

import logging
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
