"""Plugin discovery by entry points, and isolation of a plugin's exceptions."""

from __future__ import annotations

import logging

import pytest

from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins import registry
from rpcdaemon.plugins.base import Plugin
from rpcdaemon.settings import DaemonSettings, DumpSettings, Settings


def test_the_builtin_plugins_are_available() -> None:
    names = registry.available()
    assert names["L3Agent"] == "rpcdaemon.plugins.l3agent:L3AgentPlugin"
    assert names["DHCPAgent"] == "rpcdaemon.plugins.dhcpagent:DHCPAgentPlugin"
    assert names["Dump"] == "rpcdaemon.plugins.dump:DumpPlugin"


def test_an_unknown_plugin_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        registry.load_class("Bogus")
    assert "Bogus" in str(err.value) and "L3Agent, DHCPAgent, Dump" in str(err.value)


def test_load_constructs_the_enabled_plugins_in_order() -> None:
    settings = Settings(
        path="x.conf", daemon=DaemonSettings(plugins=("Dump",)), dump=DumpSettings(queue="ex")
    )
    (dump,) = registry.load(settings)
    assert isinstance(dump, Plugin) and dump.name == "Dump"
    assert [(b.exchange, b.routing_key) for b in dump.bindings()] == [("ex", "#")]


def test_call_isolated_returns_the_result_or_none_and_counts_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = registry.PluginFailures()

    def boom(n: int) -> int:
        raise RuntimeError(f"boom {n}")

    assert registry.call_isolated("P", lambda n: n * 2, 21, failures=failures) == 42
    with caplog.at_level(logging.ERROR, logger="rpcdaemon.plugins.registry"):
        for i in range(250):
            assert registry.call_isolated("P", boom, i, failures=failures) is None
    assert failures.snapshot() == {"P": 250}
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == registry.PluginFailures.LOG_FIRST
    assert "boom 0" in caplog.text
    summaries = [r for r in caplog.records if "keeps failing" in r.getMessage()]
    assert len(summaries) == 2  # at 100 and 200


def test_call_isolated_lets_base_exceptions_through() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.call_isolated("P", interrupted)
