"""The ini loader: the 2014 file loads unchanged, new options, neutron.conf, clear errors."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon import config
from rpcdaemon.config import options
from rpcdaemon.core.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEED = FIXTURES / "rpcdaemon.conf.original"
REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "rpcdaemon.conf") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_2014_sample_file_loads_unchanged_with_its_meanings() -> None:
    settings = config.load(str(SEED))
    d = settings.daemon
    assert d.plugins == ("L3Agent", "DHCPAgent")
    assert d.rpchost == "127.0.0.1"
    assert d.amqp_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert d.pidfile == "/var/run/rpcdaemon.pid"
    assert d.logfile == "/var/log/rpcdaemon.log"
    assert d.loglevel == "INFO"
    assert d.check_interval == 1.0
    assert d.foreground is False and d.dry_run is False
    for agent, name in ((settings.l3, "L3Agent"), (settings.dhcp, "DHCPAgent")):
        assert agent is not None
        assert agent.name == name
        assert agent.conffile == "/etc/neutron/neutron.conf"
        assert agent.loglevel == "INFO"
        assert agent.timeout == 20.0
        assert agent.queue_expire == 60.0
        assert agent.exchange == "neutron"
        assert agent.agent_down_time == 75.0
    assert settings.dump is None  # [Dump] is configured but not enabled
    if not os.path.exists("/etc/neutron/neutron.conf"):
        assert any("/etc/neutron/neutron.conf does not exist" in w for w in settings.warnings)


def test_dump_section_of_the_2014_file_when_enabled(tmp_path: Path) -> None:
    text = SEED.read_text().replace("plugins = L3Agent DHCPAgent", "plugins = Dump")
    settings = config.load(write(tmp_path, text))
    assert settings.daemon.plugins == ("Dump",)
    assert settings.l3 is None and settings.dhcp is None
    assert settings.dump is not None
    assert settings.dump.queue == "neutron"
    assert settings.dump.loglevel == "DEBUG"
    assert settings.dump.routing_key == "#"


def test_foreground_defaults_the_daemon_level_to_debug_unless_set(tmp_path: Path) -> None:
    unset = write(tmp_path, "[Daemon]\nplugins = Dump\n", "a.conf")
    assert config.load(unset, foreground=True).daemon.loglevel == "DEBUG"
    assert config.load(unset).daemon.loglevel == "INFO"
    assert config.load(str(SEED), foreground=True).daemon.loglevel == "INFO"


def test_dry_run_from_the_command_line_or_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[Daemon]\nplugins = Dump\n", "a.conf")
    assert config.load(path, dry_run=True).daemon.dry_run is True
    assert config.load(path).daemon.dry_run is False
    on = write(tmp_path, "[Daemon]\nplugins = Dump\ndry_run = yes\n", "b.conf")
    assert config.load(on).daemon.dry_run is True


def test_new_options_are_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [Daemon]
        plugins = L3Agent, DHCPAgent Dump
        rpchost = amqps://u:p@rabbit.example:5671/vhost
        cloud = prod
        max_concurrency = 4
        resync_interval = 30.5
        metrics_address = 127.0.0.1:9105
        coordination_url = redis://127.0.0.1:6379
        [L3Agent]
        conffile =
        exchange = openstack
        agent_down_time = 30
        routing_keys = q-reports-plugin
        max_dead_fraction = 0.25
        max_moves_per_pass = 7
        confirm_with_api = off
        restore_ha_redundancy = true
        [DHCPAgent]
        conffile =
        agents_per_network = 2
        notifications = no
        [Dump]
        routing_key = notifications.*
        redact = token, password
        output = dump.jsonl
        """,
    )
    s = config.load(path)
    assert s.daemon.plugins == ("L3Agent", "DHCPAgent", "Dump")
    assert s.daemon.amqp_url == "amqps://u:p@rabbit.example:5671/vhost"
    assert (s.daemon.cloud, s.daemon.max_concurrency, s.daemon.resync_interval) == ("prod", 4, 30.5)
    assert s.daemon.metrics_address == "127.0.0.1:9105"
    assert s.daemon.coordination_url == "redis://127.0.0.1:6379"
    assert s.l3 is not None and s.dhcp is not None and s.dump is not None
    assert s.l3.conffile is None and s.l3.exchange == "openstack" and s.l3.agent_down_time == 30
    assert s.l3.routing_keys == ("q-reports-plugin",)
    assert (s.l3.max_dead_fraction, s.l3.max_moves_per_pass) == (0.25, 7)
    assert s.l3.confirm_with_api is False and s.l3.restore_ha_redundancy is True
    assert s.dhcp.agents_per_network == 2 and s.dhcp.notifications is False
    assert s.dhcp.agents_per_network is not None
    assert s.dump.routing_key == "notifications.*"
    assert s.dump.redact == ("token", "password")
    assert s.dump.output == os.path.abspath("dump.jsonl")


def test_agents_per_network_all_means_none(tmp_path: Path) -> None:
    path = write(tmp_path, "[Daemon]\nplugins = DHCPAgent\n[DHCPAgent]\nconffile =\n")
    s = config.load(path)
    assert s.dhcp is not None and s.dhcp.agents_per_network is None


NEUTRON_CONF = """
[DEFAULT]
agent_down_time = 40
control_exchange = neutron
agent_down_time = 45
auth_url = http://wrong.example/should-not-leak
[keystone_authtoken]
auth_type = password
auth_url = http://keystone.example:5000/v3
username = neutron
password = s3cr%et
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionTwo
interface = internal
[agent]
report_interval = 20
"""


def test_neutron_conf_supplies_down_time_exchange_and_credentials(tmp_path: Path) -> None:
    conf = write(tmp_path, NEUTRON_CONF, "neutron.conf")
    path = write(tmp_path, f"[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n")
    s = config.load(path)
    assert s.l3 is not None
    assert s.l3.agent_down_time == 45.0  # duplicate keys: the last one wins, as in oslo.config
    assert (s.l3.neutron.report_interval, s.l3.neutron.report_interval_set) == (20.0, True)
    assert s.l3.exchange == "neutron"
    auth = s.l3.neutron.auth
    assert auth is not None and auth.source == "keystone_authtoken"
    assert auth.auth_url == "http://keystone.example:5000/v3"
    assert (auth.username, auth.password, auth.project_name) == ("neutron", "s3cr%et", "service")
    assert (auth.region_name, auth.interface) == ("RegionTwo", "internal")
    assert s.warnings == ()


def test_explicit_plugin_options_win_over_neutron_conf(tmp_path: Path) -> None:
    conf = write(tmp_path, "[DEFAULT]\nagent_down_time = 40\ncontrol_exchange = q\n", "n.conf")
    path = write(
        tmp_path,
        f"[Daemon]\nplugins = DHCPAgent\n[DHCPAgent]\nconffile = {conf}\n"
        "agent_down_time = 90\nexchange = neutron\n",
    )
    s = config.load(path)
    assert s.dhcp is not None
    assert (s.dhcp.agent_down_time, s.dhcp.exchange) == (90.0, "neutron")
    assert (s.dhcp.neutron.agent_down_time, s.dhcp.neutron.control_exchange) == (40.0, "q")


@pytest.mark.parametrize("section", ["DEFAULT", "keystone_authtoken"])
def test_the_2014_admin_user_credentials_are_read(tmp_path: Path, section: str) -> None:
    conf = write(
        tmp_path,
        f"""
        [{section}]
        admin_user = neutron
        admin_password = pw
        admin_tenant_name = service
        auth_host = 10.0.0.2
        auth_port = 35357
        auth_protocol = https
        """,
        "n.conf",
    )
    path = write(tmp_path, f"[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n")
    s = config.load(path)
    assert s.l3 is not None and s.l3.neutron.auth is not None
    auth = s.l3.neutron.auth
    assert auth.source == "admin_user"
    assert (auth.username, auth.password, auth.project_name) == ("neutron", "pw", "service")
    assert auth.auth_url == "https://10.0.0.2:35357/v2.0"


def test_incomplete_credentials_are_a_warning(tmp_path: Path) -> None:
    conf = write(tmp_path, "[keystone_authtoken]\nusername = neutron\n", "n.conf")
    path = write(tmp_path, f"[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n")
    s = config.load(path)
    assert s.l3 is not None and s.l3.neutron.auth is None
    assert any("missing auth_url, password, project_name" in w for w in s.warnings)


def test_a_broken_neutron_conf_is_an_error_naming_the_plugin_option(tmp_path: Path) -> None:
    conf = write(tmp_path, "[DEFAULT]\nagent_down_time = soon\n", "n.conf")
    path = write(tmp_path, f"[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = {conf}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert (err.value.path, err.value.section, err.value.option) == (path, "L3Agent", "conffile")
    assert "agent_down_time" in str(err.value) and "soon" in str(err.value)


# (file text, section, option, words the message must contain)
ERRORS = [
    (
        "[Daemon]\nplugins = L3Agent Bogus\n",
        "Daemon",
        "plugins",
        ["Bogus", "L3Agent, DHCPAgent, Dump"],
    ),
    ("[Daemon]\nplugins = l3agent\n", "Daemon", "plugins", ["did you mean L3Agent"]),
    ("[Daemon]\nplugins =\n", "Daemon", "plugins", ["names no plugin"]),
    (
        "[Daemon]\nplugins = Dump\nfrobnicate = 1\n",
        "Daemon",
        "frobnicate",
        ["unknown option", "rpchost"],
    ),
    ("[Daemon]\nplugins = Dump\n[Bogus]\nx = 1\n", "Bogus", None, ["unknown section", "[Daemon]"]),
    (
        "[Daemon]\nplugins = Dump\ncheck_interval = often\n",
        "Daemon",
        "check_interval",
        ["'often'", "number of seconds"],
    ),
    (
        "[Daemon]\nplugins = Dump\ncheck_interval = -1\n",
        "Daemon",
        "check_interval",
        ["'-1' is out of range", "from 0.05 to 60 s"],
    ),
    ("[Daemon]\nplugins = Dump\nloglevel = LOUD\n", "Daemon", "loglevel", ["DEBUG, INFO"]),
    ("[Daemon]\nplugins = Dump\ndry_run = maybe\n", "Daemon", "dry_run", ["boolean"]),
    ("[Daemon]\nplugins = Dump\nmax_concurrency = 2.5\n", "Daemon", "max_concurrency", ["integer"]),
    (
        "[Daemon]\nplugins = Dump\nmetrics_address = nowhere\n",
        "Daemon",
        "metrics_address",
        ["HOST:PORT"],
    ),
    ("[Daemon]\nplugins = Dump\nrpchost = not a host\n", "Daemon", "rpchost", ["kombu URL"]),
    (
        "[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile =\nmax_dead_fraction = 2\n",
        "L3Agent",
        "max_dead_fraction",
        ["'2' is out of range", "from 0.01 to 1"],
    ),
    (
        "[Daemon]\nplugins = DHCPAgent\n[DHCPAgent]\nagents_per_network = some\n",
        "DHCPAgent",
        "agents_per_network",
        ['"all"'],
    ),
    (
        "[Daemon]\nplugins = L3Agent\n[L3Agent]\nagents_per_network = 2\n",
        "L3Agent",
        "agents_per_network",
        ["unknown option"],
    ),
    (
        "[Daemon]\nplugins = Dump\nloglevel = INFO\nloglevel = DEBUG\n",
        "Daemon",
        "loglevel",
        ["set twice"],
    ),
    (
        "[Daemon]\nplugins = Dump\n[Dump]\nfilter = body['method'] == 'report_state'\n",
        "Dump",
        "filter",
        [],
    ),
]


@pytest.mark.parametrize(("text", "section", "option", "words"), ERRORS)
def test_errors_name_file_section_and_option(
    tmp_path: Path, text: str, section: str, option: str | None, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    exc = err.value
    assert (exc.path, exc.section, exc.option) == (path, section, option)
    line = str(exc)
    assert "\n" not in line
    assert line.startswith(f"{path}: [{section}]")
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("plugins = Dump\n", ["line 1", "before any [section]"]),
        ("[Daemon]\nthis is not an option\n", ["line 2", "syntax error"]),
        ("[Daemon]\nplugins = Dump\n[Daemon]\n", ["line 3", "appears twice"]),
        ("[Dump]\nqueue = neutron\n", ["no [Daemon] section"]),
    ],
)
def test_syntax_errors_name_the_file_and_line(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}: ")
    for word in words:
        assert word in str(err.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match="no such file") as err:
        config.load(missing)
    assert err.value.path == missing
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(str(tmp_path))
    if os.geteuid() != 0:  # root reads anything
        path = write(tmp_path, "[Daemon]\n", "locked.conf")
        os.chmod(path, 0)
        with pytest.raises(ConfigError, match="permission denied"):
            config.load(path)


def test_default_section_values_apply_where_they_are_options(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[DEFAULT]\nloglevel = WARNING\nqueue_expire = 30\n"
        "[Daemon]\nplugins = L3Agent Dump\n[L3Agent]\nconffile =\n",
    )
    s = config.load(path)
    assert s.daemon.loglevel == "WARNING"
    assert s.l3 is not None and s.l3.loglevel == "WARNING" and s.l3.queue_expire == 30.0
    assert s.dump is not None and s.dump.queue_expire == 30.0


def test_percent_signs_are_not_interpolated(tmp_path: Path) -> None:
    path = write(tmp_path, "[Daemon]\nplugins = Dump\nrpchost = amqp://u:p%41@h:5672/%2F\n")
    assert config.load(path).daemon.amqp_url == "amqp://u:p%41@h:5672/%2F"


@pytest.mark.parametrize(
    ("rpchost", "url"),
    [
        ("10.0.0.5", "amqp://guest:guest@10.0.0.5:5672//"),
        ("rabbit.example", "amqp://guest:guest@rabbit.example:5672//"),
        ("rabbit.example:5673", "amqp://guest:guest@rabbit.example:5673//"),
        ("fd00::5", "amqp://guest:guest@[fd00::5]:5672//"),
        ("[fd00::5]:5673", "amqp://guest:guest@[fd00::5]:5673//"),
        ("amqp://u:p@h:5672//", "amqp://u:p@h:5672//"),
        ("pyamqp://h//", "pyamqp://h//"),
        ("memory://", "memory://"),
        ("amqp://a//;amqp://b//", "amqp://a//;amqp://b//"),
    ],
)
def test_amqp_url_from_rpchost(rpchost: str, url: str) -> None:
    assert config.amqp_url_from_rpchost(rpchost) == url


@pytest.mark.parametrize("bad", ["", "two words", "host:99999", "host:port", "[fd00::5", "-x"])
def test_amqp_url_from_rpchost_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        config.amqp_url_from_rpchost(bad)


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True))
def test_every_host_name_becomes_a_guest_url_on_5672(host: str) -> None:
    if host.endswith("-"):
        return
    assert config.amqp_url_from_rpchost(host) == f"amqp://guest:guest@{host}:5672//"


def test_the_sample_loads_and_documents_every_option(tmp_path: Path) -> None:
    sample = config.render_sample()
    s = config.load(write(tmp_path, sample))
    assert s.daemon.plugins == ("L3Agent", "DHCPAgent")
    for opt in options.OPTIONS:
        assert f"#{opt.name} =" in sample, opt.name


def test_the_checked_in_sample_is_the_generated_one() -> None:
    assert (REPO / "etc" / "rpcdaemon.conf.sample").read_text() == config.render_sample()


def test_the_reference_documents_every_option() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert config.render_markdown_tables() in doc


def test_dump_only_applies_command_line_values(tmp_path: Path) -> None:
    base = config.load(str(SEED))
    s = config.dump_only(base, url="10.1.1.1", exchange="nova", routing_key="a.*", output="o.j")
    assert s.daemon.plugins == ("Dump",) and s.daemon.foreground is True
    assert s.daemon.amqp_url == "amqp://guest:guest@10.1.1.1:5672//"
    assert s.l3 is None and s.dhcp is None and s.dump is not None
    assert (s.dump.queue, s.dump.routing_key) == ("nova", "a.*")
    assert s.dump.output == os.path.abspath("o.j")
    bare = config.dump_only(None)
    assert bare.dump is not None and bare.dump.queue == "neutron"
    with pytest.raises(ConfigError, match="--url"):
        config.dump_only(None, url="no such host")


# -- one Neutron connection: one set of credentials, one timeout ----------------------------


def neutron_conf(tmp_path: Path, name: str, user: str, password: str = "pw") -> str:
    return write(
        tmp_path,
        f"""
        [keystone_authtoken]
        auth_url = http://keystone:5000/v3
        username = {user}
        password = {password}
        project_name = service
        """,
        name,
    )


def two_planners(tmp_path: Path, l3_conf: str, dhcp_conf: str, extra: str = "") -> str:
    return write(
        tmp_path,
        f"[Daemon]\nplugins = L3Agent DHCPAgent\n{extra}\n"
        f"[L3Agent]\nconffile = {l3_conf}\n[DHCPAgent]\nconffile = {dhcp_conf}\n",
    )


def test_both_planners_with_different_conffile_credentials_is_an_error_naming_both(
    tmp_path: Path,
) -> None:
    a = neutron_conf(tmp_path, "a.conf", "neutron")
    b = neutron_conf(tmp_path, "b.conf", "other", password="secret-b")
    path = two_planners(tmp_path, a, b)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    text = str(err.value)
    for word in (path, "[L3Agent]", "[DHCPAgent]", a, b, "'neutron' vs 'other'"):
        assert word in text
    assert "secret-b" not in text and "\n" not in text


def test_a_password_difference_is_named_without_the_password(tmp_path: Path) -> None:
    a = neutron_conf(tmp_path, "a.conf", "neutron", password="pw-a")
    b = neutron_conf(tmp_path, "b.conf", "neutron", password="pw-b")
    with pytest.raises(ConfigError, match="password") as err:
        config.load(two_planners(tmp_path, a, b))
    assert "pw-a" not in str(err.value) and "pw-b" not in str(err.value)


def test_same_credentials_in_two_files_give_one_api_setting(tmp_path: Path) -> None:
    a = neutron_conf(tmp_path, "a.conf", "neutron")
    b = neutron_conf(tmp_path, "b.conf", "neutron")
    s = config.load(two_planners(tmp_path, a, b))
    assert s.api is not None and s.api.auth is not None and s.api.cloud is None
    assert s.api.auth.username == "neutron" and s.api.timeout == 20.0
    assert "[L3Agent] and [DHCPAgent]" in s.api.source and a in s.api.source
    assert "pw" not in s.api.source.replace("password", "")


def test_cloud_wins_over_conflicting_conffiles(tmp_path: Path) -> None:
    a = neutron_conf(tmp_path, "a.conf", "neutron")
    b = neutron_conf(tmp_path, "b.conf", "other")
    s = config.load(two_planners(tmp_path, a, b, "cloud = prod"))
    assert s.api is not None
    assert (s.api.cloud, s.api.auth) == ("prod", None)
    assert "[Daemon] cloud = prod" in s.api.source


def test_one_planner_with_credentials_serves_both(tmp_path: Path) -> None:
    a = neutron_conf(tmp_path, "a.conf", "neutron")
    s = config.load(two_planners(tmp_path, a, str(tmp_path / "missing.conf")))
    assert s.api is not None and s.api.auth is not None
    assert s.api.source.startswith("[L3Agent] conffile ")


def test_no_planner_no_api_and_no_credentials_is_source_none(tmp_path: Path) -> None:
    dump = write(tmp_path, "[Daemon]\nplugins = Dump\n", "dump.conf")
    assert config.load(dump).api is None
    s = config.load(two_planners(tmp_path, str(tmp_path / "x"), str(tmp_path / "y")))
    assert s.api is not None and (s.api.cloud, s.api.auth, s.api.source) == (None, None, "none")


@pytest.mark.parametrize(
    ("daemon", "l3", "dhcp", "expected"),
    [
        ("", "", "", 20.0),
        ("timeout = 7", "", "", 7.0),
        ("", "timeout = 9", "", 9.0),
        ("", "timeout = 9", "timeout = 9", 9.0),
        ("timeout = 9", "timeout = 9", "", 9.0),
        ("", "timeout = 9", "timeout = 10", None),
        ("timeout = 7", "", "timeout = 10", None),
    ],
)
def test_one_timeout_rule(
    tmp_path: Path, daemon: str, l3: str, dhcp: str, expected: float | None
) -> None:
    path = write(
        tmp_path,
        f"[Daemon]\nplugins = L3Agent DHCPAgent\ncloud = c\n{daemon}\n"
        f"[L3Agent]\n{l3}\n[DHCPAgent]\n{dhcp}\n",
    )
    if expected is None:
        with pytest.raises(ConfigError, match="one timeout") as err:
            config.load(path)
        assert "timeout = 10" in str(err.value)
        return
    s = config.load(path)
    assert s.api is not None and s.api.timeout == expected
    assert s.l3 is not None and s.dhcp is not None
    assert s.l3.timeout == s.dhcp.timeout == expected


def test_a_utf8_bom_is_accepted_in_both_files(tmp_path: Path) -> None:
    conf = tmp_path / "neutron.conf"
    conf.write_bytes(
        b"\xef\xbb\xbf[DEFAULT]\nagent_down_time = 30\n[keystone_authtoken]\n"
        b"auth_url = http://k:5000/v3\nusername = u\npassword = p\nproject_name = s\n"
    )
    path = tmp_path / "bom.conf"
    path.write_bytes(
        b"\xef\xbb\xbf[Daemon]\nplugins = L3Agent\n[L3Agent]\nconffile = " + bytes(conf) + b"\n"
    )
    s = config.load(str(path))
    assert s.l3 is not None and s.l3.agent_down_time == 30.0
    assert s.api is not None and s.api.auth is not None and s.api.auth.username == "u"


def test_preflight_accepts_what_the_daemon_can_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  known:\n    auth_type: none\n    auth:\n      endpoint: http://x\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(
        tmp_path,
        f"[Daemon]\nplugins = L3Agent Dump\ncloud = known\nmetrics_address = 127.0.0.1:{port}\n"
        "coordination_url = redis://127.0.0.1:6379?timeout=5\n"
        f"[Dump]\noutput = {tmp_path / 'out.jsonl'}\n",
    )
    settings = config.load(path)
    config.preflight(settings)  # no exception
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as err:
            config.preflight(settings)
        # check-config on a host where the daemon runs (and holds the port): a warning only
        (warning,) = config.preflight(settings, checking=True)
        assert f"127.0.0.1:{port}" in warning and "in use" in warning
    assert (err.value.section, err.value.option) == ("Daemon", "metrics_address")
    # A Dump-only daemon has no metrics server, no election, no Neutron API: not checked.
    dump_only = write(tmp_path, "[Daemon]\nplugins = Dump\ncloud = nosuchcloud\n", "dump-only.conf")
    config.preflight(config.load(dump_only))


def test_coordination_url_password_is_not_shown(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[Daemon]\nplugins = L3Agent\ncloud = c\ncoordination_url = nosuch://u:s3cret@h\n"
    )
    settings = config.load(path)
    from rpcdaemon.config.preflight import check_coordination_url

    with pytest.raises(ConfigError, match="no tooz driver 'nosuch'") as err:
        check_coordination_url(path, str(settings.daemon.coordination_url))
    assert "s3cret" not in str(err.value)


def test_a_bad_default_section_value_is_reported_where_it_was_written(tmp_path: Path) -> None:
    path = write(tmp_path, "[DEFAULT]\ntimeout = 1e300\n[Daemon]\nplugins = L3Agent\ncloud = c\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert (err.value.section, err.value.option) == ("DEFAULT", "timeout")
    assert "'1e300' is out of range" in str(err.value) and "from 1 to 3600 s" in str(err.value)


def test_check_config_warns_when_only_a_foreground_run_could_work(tmp_path: Path) -> None:
    from rpcdaemon.config.preflight import detached_warnings

    path = write(
        tmp_path,
        f"[Daemon]\nplugins = Dump\npidfile = {tmp_path}/nodir/x.pid\nlogfile = {tmp_path}/l.log\n",
    )
    (line,) = detached_warnings(config.load(path))
    assert "[Daemon] pidfile" in line and f"{tmp_path}/nodir does not exist" in line
