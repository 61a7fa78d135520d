"""The node-death fast path's configuration: [Daemon] options -> the detector's policy, the
neutron.conf ``[agent] report_interval``, and the timer warnings of check-config and run."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rpcdaemon import config
from rpcdaemon.core.detection import DetectorPolicy
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import DaemonSettings, Settings

CREDENTIALS = (
    "[keystone_authtoken]\nauth_url = http://keystone:5000/v3\nusername = neutron\n"
    "password = pw\nproject_name = service\n"
)


def write(tmp_path: Path, text: str, name: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def neutron(
    tmp_path: Path,
    *,
    down: float | None = None,
    report: str | None = None,
    group: str = "agent",
    name: str = "neutron.conf",
) -> str:
    """A neutron.conf with credentials and, when given, the two timers."""
    text = CREDENTIALS
    if down is not None:
        text += f"[DEFAULT]\nagent_down_time = {down:g}\n"
    if report is not None:
        text += f"[{group}]\nreport_interval = {report}\n"
    return write(tmp_path, text, name)


def load(tmp_path: Path, daemon: str = "", plugins: str = "", *, conffile: str) -> Settings:
    """Both planners on ``conffile``; ``daemon``/``plugins``: extra lines for [Daemon] and
    for both plugin sections."""
    text = f"[Daemon]\nplugins = L3Agent DHCPAgent\n{daemon}\n"
    for section in ("L3Agent", "DHCPAgent"):
        text += f"[{section}]\nconffile = {conffile}\n{plugins}\n"
    return config.load(write(tmp_path, text, "rpcdaemon.conf"))


def timer_lines(settings: Settings) -> list[str]:
    return [w for w in settings.warnings if "report_interval" in w]


# -- [Daemon] options -> DetectorPolicy ------------------------------------------------------


def test_the_defaults_are_the_detectors_own(tmp_path: Path) -> None:
    s = load(tmp_path, conffile=neutron(tmp_path))
    assert s.daemon.detection == DetectorPolicy()
    assert DaemonSettings().detection == DetectorPolicy()
    assert s.daemon.detection.enabled is True


def test_every_option_reaches_the_policy(tmp_path: Path) -> None:
    daemon = (
        "fast_failover = off\nprobe_timeout = 3.5\nsuspect_multiple = 1.5\n"
        "node_min_agents = 3\ndisruption_hosts = 4\ndisruption_fraction = 0.3\n"
    )
    s = load(tmp_path, daemon, conffile=neutron(tmp_path))
    assert s.daemon.detection == dataclasses.replace(
        DetectorPolicy(),
        enabled=False,
        probe_timeout=3.5,
        suspect_multiple=1.5,
        min_agents=3,
        quiet_hosts=4,
        quiet_fraction=0.3,
    )
    # the runtime fills agent_down_time from the planners; the file never sets it
    assert s.daemon.detection.agent_down_time == DetectorPolicy().agent_down_time


def test_an_option_in_default_applies_to_the_daemon(tmp_path: Path) -> None:
    conf = neutron(tmp_path)
    text = (
        f"[DEFAULT]\nprobe_timeout = 5\n[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n"
    )
    s = config.load(write(tmp_path, text, "rpcdaemon.conf"))
    assert s.daemon.detection.probe_timeout == 5.0


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("fast_failover = maybe", ["'maybe' is not a boolean"]),
        ("probe_timeout = 0", ["out of range", "from 0.1 to 60 s"]),
        ("probe_timeout = nan", ["not a number of seconds"]),
        ("probe_timeout = 61", ["out of range"]),
        ("suspect_multiple = 1", ["out of range", "a number from 1.05 to 10"]),
        ("suspect_multiple = twice", ["not a number from 1.05 to 10"]),
        ("node_min_agents = 1", ["out of range", "from 2 to 64", "crashed process"]),
        ("node_min_agents = 2.5", ["not an integer"]),
        ("disruption_hosts = 0", ["out of range", "from 1 to 100000"]),
        ("disruption_fraction = 0", ["out of range", "from 0.01 to 1"]),
        ("disruption_fraction = 1.5", ["out of range"]),
    ],
)
def test_a_bad_value_names_file_section_and_option(
    tmp_path: Path, line: str, words: list[str]
) -> None:
    path = str(tmp_path / "rpcdaemon.conf")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, line, conffile=neutron(tmp_path))
    option = line.split(" = ")[0]
    assert (err.value.path, err.value.section, err.value.option) == (path, "Daemon", option)
    text = str(err.value)
    assert text.startswith(f"{path}: [Daemon]: {option}: ")
    for word in words:
        assert word in text


def test_check_config_exits_2_on_a_bad_value(tmp_path: Path) -> None:
    conf = neutron(tmp_path)
    path = write(
        tmp_path,
        f"[Daemon]\nplugins = L3Agent\nnode_min_agents = 1\n[L3Agent]\nconffile = {conf}\n",
        "bad.conf",
    )
    result = rpcdaemon("check-config", "-c", path)
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        f"rpcdaemon: error: {path}: [Daemon]: node_min_agents: '1' is out of range: expected "
        "an integer from 2 to 64 (one agent silent alone is a crashed process, never a node "
        "death)"
    ]


# -- neutron.conf [agent] report_interval ----------------------------------------------------


@pytest.mark.parametrize("group", ["agent", "AGENT", "Agent"])
def test_report_interval_is_read_from_the_agent_group(tmp_path: Path, group: str) -> None:
    s = load(tmp_path, conffile=neutron(tmp_path, report="2.5", group=group))
    assert s.l3 is not None and s.dhcp is not None
    assert (s.l3.neutron.report_interval, s.l3.neutron.report_interval_set) == (2.5, True)
    assert s.dhcp.neutron.report_interval == 2.5


def test_report_interval_defaults_to_neutrons_30(tmp_path: Path) -> None:
    s = load(tmp_path, conffile=neutron(tmp_path))
    assert s.l3 is not None
    assert (s.l3.neutron.report_interval, s.l3.neutron.report_interval_set) == (30.0, False)
    assert s.l3.neutron.agent_down_time_set is False
    missing = str(tmp_path / "missing.conf")
    s = load(tmp_path, conffile=missing)
    assert s.l3 is not None and s.l3.neutron.report_interval == 30.0


def test_the_last_agent_group_wins_as_in_oslo_config(tmp_path: Path) -> None:
    conf = write(
        tmp_path,
        CREDENTIALS + "[AGENT]\nreport_interval = 10\n[agent]\nreport_interval = 4\n",
        "neutron.conf",
    )
    s = load(tmp_path, conffile=conf)
    assert s.l3 is not None and s.l3.neutron.report_interval == 4.0


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf", "nan", "1e309", "86401"])
def test_a_bad_report_interval_is_an_error_naming_the_plugin_conffile(
    tmp_path: Path, raw: str
) -> None:
    conf = neutron(tmp_path, report=raw)
    path = str(tmp_path / "rpcdaemon.conf")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, conffile=conf)
    assert (err.value.path, err.value.section, err.value.option) == (path, "L3Agent", "conffile")
    assert str(err.value) == (
        f"{path}: [L3Agent]: conffile: {conf} [agent] report_interval = {raw!r} is not a number "
        "of seconds greater than 0 and at most 86400 s"
    )


# -- timer warnings --------------------------------------------------------------------------


def test_neutrons_defaults_and_the_issue_rig_warn_of_nothing(tmp_path: Path) -> None:
    assert timer_lines(load(tmp_path, conffile=neutron(tmp_path))) == []
    assert timer_lines(load(tmp_path, conffile=neutron(tmp_path, down=10, report="2.5"))) == []
    at_half = neutron(tmp_path, down=75, report="37.5")  # Neutron's limit itself is fine
    assert timer_lines(load(tmp_path, conffile=at_half)) == []


def test_report_interval_over_half_of_agent_down_time_warns_once_for_both(
    tmp_path: Path,
) -> None:
    conf = neutron(tmp_path, down=75, report="40")
    s = load(tmp_path, conffile=conf)
    path = tmp_path / "rpcdaemon.conf"
    assert timer_lines(s) == [
        f"{path}: [L3Agent] and [DHCPAgent]: report_interval 40 s ({conf} [agent] "
        f"report_interval) is more than half of agent_down_time 75 s ({conf} [DEFAULT] "
        "agent_down_time): one late heartbeat makes an agent look dead, and agents flap "
        "between alive and dead (Neutron asks for report_interval <= agent_down_time / 2); "
        "lower report_interval where the agents read it, or raise agent_down_time"
    ]


def test_a_fast_path_that_can_never_fire_warns_for_its_planner(tmp_path: Path) -> None:
    conf = neutron(tmp_path)  # report_interval: Neutron's 30
    text = (
        f"[Daemon]\nplugins = L3Agent DHCPAgent\n[L3Agent]\nconffile = {conf}\n"
        f"agent_down_time = 30\n[DHCPAgent]\nconffile = {conf}\n"
    )
    path = write(tmp_path, text, "rpcdaemon.conf")
    s = config.load(path)
    fast = [w for w in s.warnings if "fast_failover" in w]
    assert fast == [
        f"{path}: [Daemon] fast_failover: for [L3Agent], an agent is suspect no sooner than "
        "suspect_multiple 1.2 x report_interval 30 s (Neutron's default, not read from "
        f"{conf}) = 36 s, and probe_timeout 2 s later is 38 s, not before agent_down_time "
        "30 s (set in [L3Agent]): the fast path can never act before agent_down_time does; "
        "lower suspect_multiple or probe_timeout, raise agent_down_time, or set "
        "fast_failover = false"
    ]
    flap = [w for w in s.warnings if "more than half" in w]
    assert len(flap) == 1 and flap[0].startswith(f"{path}: [L3Agent]: report_interval 30 s")
    assert "agent_down_time 30 s (set in [L3Agent])" in flap[0]
    quiet = text.replace("[Daemon]\n", "[Daemon]\nfast_failover = false\n")
    s = config.load(write(tmp_path, quiet, "off.conf"))
    assert [w for w in s.warnings if "fast_failover" in w] == []
    assert [w for w in s.warnings if "more than half" in w] != []  # flapping is still said


def test_the_fast_path_bound_is_suspicion_plus_probe(tmp_path: Path) -> None:
    # 1.2 x 2.5 + 2 = 5: at agent_down_time 5 the verdict can never come first; at 5.5 it can
    # (and report_interval 2.5 is at most half of either, so nothing else is said)
    at = load(tmp_path, conffile=neutron(tmp_path, down=5, report="2.5"))
    assert [w for w in timer_lines(at) if "fast_failover" in w] != []
    assert len(timer_lines(at)) == 1
    above = load(tmp_path, conffile=neutron(tmp_path, down=5.5, report="2.5"))
    assert timer_lines(above) == []
    slower_probe = load(
        tmp_path, "probe_timeout = 2.5", conffile=neutron(tmp_path, down=5.5, report="2.5")
    )
    assert len(timer_lines(slower_probe)) == 1
    lower_multiple = load(
        tmp_path, "suspect_multiple = 1.05", conffile=neutron(tmp_path, down=5, report="2.5")
    )
    assert timer_lines(lower_multiple) == []


def test_each_conffile_is_judged_with_its_own_numbers(tmp_path: Path) -> None:
    fine = neutron(tmp_path, down=75, report="30", name="fine.conf")
    flappy = neutron(tmp_path, down=75, report="50", name="flappy.conf")
    text = (
        f"[Daemon]\nplugins = L3Agent DHCPAgent\n[L3Agent]\nconffile = {fine}\n"
        f"[DHCPAgent]\nconffile = {flappy}\n"
    )
    path = write(tmp_path, text, "rpcdaemon.conf")
    lines = timer_lines(config.load(path))
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: [DHCPAgent]: report_interval 50 s ({flappy} [agent]")


def test_agent_down_time_written_in_default_is_named_so(tmp_path: Path) -> None:
    conf = neutron(tmp_path, report="40")
    text = f"[DEFAULT]\nagent_down_time = 60\n[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n"
    s = config.load(write(tmp_path, text, "rpcdaemon.conf"))
    lines = timer_lines(s)
    assert len(lines) == 1
    assert "is more than half of agent_down_time 60 s (set in [DEFAULT])" in lines[0]


def test_no_planner_no_timer_warning(tmp_path: Path) -> None:
    text = "[Daemon]\nplugins = Dump\nprobe_timeout = 60\n"
    assert config.load(write(tmp_path, text, "rpcdaemon.conf")).warnings == ()


def rpcdaemon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", *args], capture_output=True, text=True, timeout=30
    )


def test_check_config_prints_the_timer_warnings_and_still_passes(tmp_path: Path) -> None:
    conf = neutron(tmp_path, down=75, report="40")
    path = write(
        tmp_path,
        f"[Daemon]\nplugins = L3Agent DHCPAgent\n[L3Agent]\nconffile = {conf}\n"
        f"[DHCPAgent]\nconffile = {conf}\n",
        "rpcdaemon.conf",
    )
    result = rpcdaemon("check-config", "-c", path)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "report_interval" in line]
    assert len(warned) == 1
    assert warned[0].startswith(
        f"rpcdaemon: warning: {path}: [L3Agent] and [DHCPAgent]: report_interval 40 s"
    )
