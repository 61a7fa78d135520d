"""contrib/: the systemd unit passes ``systemd-analyze verify``, the logrotate snippet parses,
the sample clouds.yaml loads with openstacksdk. The tools are real; a missing one fails the
test (``scripts/test`` installs them), it never skips."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import openstack.config

from rpcdaemon.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "rpcdaemon.service"
LOGROTATE = ROOT / "contrib" / "logrotate" / "rpcdaemon"
CLOUDS = ROOT / "contrib" / "clouds.yaml.sample"
INSTALLED = "/opt/rpcdaemon/bin/rpcdaemon"


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )
    assert path, f"{name} is needed (scripts/test installs it): apt-get install it"
    return path


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on the unit, with ExecStart pointed at this checkout's
    ``rpcdaemon`` (verify insists that the binary exists; everything else is verbatim)."""
    here = str(Path(sys.executable).with_name("rpcdaemon"))
    assert Path(here).exists(), here
    copy = tmp_path / "rpcdaemon.service"
    copy.write_text(unit_text.replace(INSTALLED, here))
    return subprocess.run(
        [_tool("systemd-analyze"), "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys only warn: none allowed


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = (
        UNIT.read_text()
        .replace("Type=notify", "Type=notifyy")
        .replace("ProtectSystem=strict", "ProtectSystem=strickt")
    )
    result = _verify(broken, tmp_path)
    assert "notifyy" in result.stderr and "strickt" in result.stderr, result.stderr


def test_the_unit_is_hardened_and_notifies() -> None:
    service = _unit()["Service"]
    wanted = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "User": "rpcdaemon",
        "RuntimeDirectory": "rpcdaemon",
        "StateDirectory": "rpcdaemon",
    }
    assert {k: service.get(k) for k in wanted} == wanted
    assert service["WatchdogSec"].endswith("s") and int(service["WatchdogSec"][:-1]) >= 10
    assert service["RestartPreventExitStatus"] == "2"  # rpcdaemon's config error status


def test_exec_start_is_a_foreground_run_our_cli_accepts() -> None:
    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert args.foreground is True  # Type=notify: the main process must be the daemon
    assert args.config == "/etc/rpcdaemon/rpcdaemon.conf"
    assert (args.command or "run") == "run"


def test_logrotate_snippet_parses(tmp_path: Path) -> None:
    # the rpcdaemon user does not exist here: parse it with a user that does
    conf = tmp_path / "rpcdaemon"
    conf.write_text(LOGROTATE.read_text().replace("rpcdaemon adm", "root root"))
    result = subprocess.run(
        [_tool("logrotate"), "-d", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert "rotating pattern: /var/log/rpcdaemon/*.log" in result.stderr


def test_sample_clouds_yaml_loads_with_openstacksdk() -> None:
    config = openstack.config.OpenStackConfig(config_files=[str(CLOUDS)], vendor_files=[])
    cloud = config.get_one(cloud="rpcdaemon")
    assert cloud.config["auth"]["username"] == "rpcdaemon"
    assert cloud.get_interface() == "internal"
    appcred = config.get_one(cloud="rpcdaemon-appcred")
    assert appcred.config["auth_type"] == "v3applicationcredential"
