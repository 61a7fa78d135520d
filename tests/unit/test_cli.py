"""The command line as an operator meets it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rpcdaemon import __version__
from rpcdaemon.cli import main, redact_url

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "rpcdaemon.conf.original"


def rpcdaemon(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rpcdaemon: error: ")
    for word in words:
        assert word in lines[0]


BAD = [
    ("[Daemon]\nplugins = L3Agent Nope\n", ["[Daemon]", "plugins", "Nope", "DHCPAgent"]),
    ("[Daemon]\nplugins = Dump\nbogus = 1\n", ["[Daemon]", "bogus", "valid options"]),
    ("[Daemon]\nplugins = Dump\n[Nope]\n", ["[Nope]", "unknown section"]),
    ("[Daemon]\nplugins = Dump\ncheck_interval = x\n", ["[Daemon]", "check_interval", "number"]),
    ("[Daemon]\nplugins = Dump\n[Dump]\nfilter = 'x' in body\n", ["[Dump]", "filter", "JMESPath"]),
    ("[Daemon]\nplugins = Dump\n[Dump]\nfilter = ][\n", ["[Dump]", "filter"]),
    ("[Daemon\nplugins = Dump\n", ["line 1"]),
    ("no section\n", ["line 1"]),
]


@pytest.mark.parametrize(("text", "words"), BAD)
def test_check_config_errors_are_one_line_and_exit_2(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(text)
    assert_one_line_error(rpcdaemon("check-config", "-c", str(path)), str(path), *words)


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.conf")
    assert_one_line_error(rpcdaemon("check-config", "-c", missing), missing, "no such file")


@pytest.mark.parametrize(
    "args",
    [
        ("-c", "{f}"),
        ("-c", "{f}", "-d"),
        ("run", "-c", "{f}", "-d"),
        ("-c", "{f}", "run"),
        ("-d", "run", "-c", "{f}", "--dry-run"),
    ],
)
def test_run_takes_c_and_d_before_or_after_the_subcommand(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = str(tmp_path / "missing.conf")
    result = rpcdaemon(*(a.format(f=missing) for a in args))
    assert_one_line_error(result, missing)


LEGACY_NEUTRON_CONF = (
    "[DEFAULT]\nadmin_user = neutron\nadmin_password = s3cret\nadmin_tenant_name = service\n"
    "auth_url = http://keystone:35357/v2.0\n"
)


def with_conffile(text: str, conffile: Path) -> str:
    out = text.replace("#conffile = /etc/neutron/neutron.conf", f"conffile = {conffile}")
    return out.replace("conffile = /etc/neutron/neutron.conf", f"conffile = {conffile}")


def test_sample_config_passes_check_config_once_it_has_credentials(tmp_path: Path) -> None:
    sample = rpcdaemon("sample-config")
    assert sample.returncode == 0 and "[Daemon]" in sample.stdout
    bare = tmp_path / "bare.conf"
    bare.write_text(sample.stdout)
    bare.write_text(with_conffile(sample.stdout, tmp_path / "missing.conf"))
    assert_one_line_error(
        rpcdaemon("check-config", "-c", str(bare)), "[Daemon]", "no Neutron API credentials"
    )
    conffile = tmp_path / "neutron.conf"
    conffile.write_text(LEGACY_NEUTRON_CONF)
    path = tmp_path / "sample.conf"
    path.write_text(with_conffile(sample.stdout, conffile))
    check = rpcdaemon("check-config", "-c", str(path))
    assert check.returncode == 0, check.stderr
    assert f"{path}: OK" in check.stdout


def test_check_config_of_the_2014_file_reports_meanings_and_warnings(tmp_path: Path) -> None:
    conffile = tmp_path / "neutron.conf"
    conffile.write_text(LEGACY_NEUTRON_CONF)
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(with_conffile(SEED.read_text(), conffile))
    check = rpcdaemon("check-config", "-c", str(path))
    assert check.returncode == 0, check.stderr
    assert "plugins: L3Agent DHCPAgent" in check.stdout
    assert "amqp://guest:***@127.0.0.1:5672//" in check.stdout  # password not shown
    assert "agent_down_time 75 s" in check.stdout
    assert (
        f"Neutron API credentials: [L3Agent] and [DHCPAgent] conffile {conffile} (admin_user: "
        "user 'neutron', project 'service' at http://keystone:35357/v2.0)"
    ) in check.stdout
    assert "s3cret" not in check.stdout + check.stderr
    for line in check.stderr.splitlines():
        assert line.startswith("rpcdaemon: warning: ")


def test_the_2014_file_without_credentials_is_refused_not_warned(tmp_path: Path) -> None:
    missing = tmp_path / "no-neutron.conf"  # what /etc/neutron/neutron.conf is on this machine
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(with_conffile(SEED.read_text(), missing))
    assert_one_line_error(
        rpcdaemon("check-config", "-c", str(path)),
        str(path),
        "[Daemon]",
        "cloud",
        "no Neutron API credentials",
        f"[L3Agent] conffile {missing}",
    )


def test_dump_rejects_a_python_filter_on_the_command_line() -> None:
    result = rpcdaemon("dump", "--filter", "body['method'] == 'x'")
    assert_one_line_error(result, "--filter")


def test_version_and_help() -> None:
    assert rpcdaemon("version").stdout.strip() == f"rpcdaemon {__version__}"
    assert rpcdaemon("--version").stdout.strip() == f"rpcdaemon {__version__}"
    helptext = rpcdaemon("--help").stdout
    for command in ("run", "check-config", "sample-config", "dump", "version", "demo", "sim"):
        assert command in helptext
    dump_help = rpcdaemon("dump", "--help")
    assert dump_help.returncode == 0 and "--routing-key" in dump_help.stdout


def test_usage_errors_exit_2() -> None:
    assert rpcdaemon("frobnicate").returncode == 2
    assert rpcdaemon("check-config", "--nope").returncode == 2


def test_main_returns_status_codes_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sample-config"]) == 0
    assert "[Dump]" in capsys.readouterr().out
    assert main(["check-config", "-c", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--help"]) == 0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@h:5672//", "amqp://guest:***@h:5672//"),
        ("amqp://u:p@a//;amqp://u:q@b//", "amqp://u:***@a//;amqp://u:***@b//"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_check_config_refuses_two_planners_with_different_credentials(tmp_path: Path) -> None:
    files = []
    for name, user in (("a.conf", "neutron"), ("b.conf", "other")):
        conf = tmp_path / name
        conf.write_text(
            "[keystone_authtoken]\nauth_url = http://k:5000/v3\n"
            f"username = {user}\npassword = pw\nproject_name = service\n"
        )
        files.append(str(conf))
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(
        "[Daemon]\nplugins = L3Agent DHCPAgent\n"
        f"[L3Agent]\nconffile = {files[0]}\n[DHCPAgent]\nconffile = {files[1]}\n"
    )
    result = rpcdaemon("check-config", "-c", str(path))
    assert_one_line_error(result, str(path), "[L3Agent]", "[DHCPAgent]", *files)
    run = rpcdaemon("-c", str(path), "-d")
    assert_one_line_error(run, str(path), "[L3Agent]", "[DHCPAgent]", *files)
    same = tmp_path / "same.conf"
    same.write_text(path.read_text().replace(files[1], files[0]))
    ok = rpcdaemon("check-config", "-c", str(same))
    assert ok.returncode == 0, ok.stderr
    assert f"Neutron API credentials: [L3Agent] and [DHCPAgent] conffile {files[0]}" in ok.stdout
    assert "'neutron'" in ok.stdout and "Neutron API timeout: 20 s" in ok.stdout
