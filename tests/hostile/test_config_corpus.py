"""Hostile configs: every option, out-of-range and malformed values.

Each case is one bad value for one option in an otherwise valid file. It must be refused
with exit status 2 and ONE line ``rpcdaemon: error: FILE: [Section]: option: ...`` naming the
value, by ``check-config`` and by the daemon (``run``), before anything starts.

* In-process (the bulk): ``cli.main`` for ``check-config`` and for ``run -d`` (with the
  daemon body replaced by a failure: a refused config must never reach it).
* Subprocess (a representative case of every kind of check): ``check-config``, ``-d`` and
  detached, as an operator runs them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rpcdaemon import cli
from rpcdaemon.config import options as o
from rpcdaemon.config.bounds import BOUNDS

NEUTRON_CONF = (
    "[keystone_authtoken]\nauth_url = http://keystone:5000/v3\nusername = neutron\n"
    "password = pw\nproject_name = service\n"
)
CLOUDS_YAML = "clouds:\n  known:\n    auth_type: none\n    auth:\n      endpoint: http://x:9696\n"


@dataclass(frozen=True)
class Case:
    section: str
    option: str
    value: str
    kind: str  # what is being checked, for the subprocess subset

    @property
    def id(self) -> str:
        shown = self.value if len(self.value) <= 30 else f"{self.value[:8]}...({len(self.value)})"
        return f"{self.section}.{self.option}={shown!r}"


def _numeric(opt: o.Option) -> list[str]:
    bound = BOUNDS[opt.name]
    integer = opt.kind in (o.Kind.POS_INT, o.Kind.COUNT_OR_ALL)
    below = "0" if bound.low_open or integer else f"{bound.low / 10:g}"
    above = f"{int(bound.high) + 1}" if integer else f"{bound.high * 10:g}"
    bad = [below, "-1", above, "nan", "inf", "-inf", "1e309", "abc", "1_0", "0x10", "5s", "1,5"]
    bad += ["100000000", "2.5", "1e3"] if integer else ["1e306", "1e308", "1e-9", "1e-300"]
    if not opt.default_note:
        bad.append("")  # empty = unset only where a computed default exists
    return bad


_BY_NAME: dict[str, list[str]] = {
    "plugins": ["", "Nope", "Bogus", "l3agent"],
    "rpchost": [
        "",
        "not a host",
        "10.0.0.1:0",
        "10.0.0.1:70000",
        "[fd00::1",
        "amqp://h:99999//",
        "amqp://g:g@[::1:5672//",
        "amqp://h:5672//;amqp://i:x//",
        "nosuch://h",
    ],
    "metrics_address": [
        "nowhere",
        "h:0",
        "h:70000",
        "[::1:80",
        ":abc",
        "no-such-host.invalid:9100",
        "IN_USE",
    ],
    "coordination_url": [
        "redis://[::1:6379",
        "redis://h:99999",
        "nosuch://x",
        "memcached://h",
        "not a url",
    ],
    "cloud": ["nosuchcloud"],
    "routing_keys": ["", ",", "x" * 256],
    "exchange": ["x" * 256],
    "queue": ["", "q" * 256],
    "routing_key": ["", "k" * 256],
    "notification_topic": ["", "n" * 252],
    "filter": ["][", "'x' in body", "method =="],
    "conffile": ["DIRECTORY"],
    "output": ["DIRECTORY", "/nonexistent-dir/out.jsonl"],
    "pidfile": [""],
    "logfile": [""],
    "pause_file": [""],
}
_BY_KIND: dict[o.Kind, list[str]] = {
    o.Kind.BOOL: ["maybe", "2", "", "yes please"],
    o.Kind.LEVEL: ["LOUD", "", "5"],
}
_BY_NAME["log_format"] = ["xml", "", "text json"]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for opt in o.OPTIONS:
        if opt.name in BOUNDS:
            values, kind = _numeric(opt), "range"
        elif opt.name in _BY_NAME:
            values, kind = _BY_NAME[opt.name], opt.name
        elif opt.kind in _BY_KIND:
            values, kind = _BY_KIND[opt.kind], opt.kind.value
        else:
            continue
        for section in opt.sections:
            cases.extend(Case(section, opt.name, v, kind) for v in values)
    return cases


CASES = _cases()
UNCHECKED = {  # options with no bad value: any string is a valid name or word list
    (opt.name, s)
    for opt in o.OPTIONS
    for s in opt.sections
    if not any(c.option == opt.name and c.section == s for c in CASES)
}


def test_the_corpus_covers_every_option_but_free_words() -> None:
    assert UNCHECKED == {("redact", o.DUMP)}, UNCHECKED
    assert len(CASES) > 300


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Paths shared by every case: a neutron.conf with credentials, a clouds.yaml, a busy
    port, a directory."""
    base = tmp_path_factory.mktemp("corpus")
    (base / "neutron.conf").write_text(NEUTRON_CONF)
    (base / "clouds.yaml").write_text(CLOUDS_YAML)
    (base / "adir").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        yield {
            "dir": str(base),
            "neutron_conf": str(base / "neutron.conf"),
            "clouds": str(base / "clouds.yaml"),
            "adir": str(base / "adir"),
            "in_use": f"127.0.0.1:{busy.getsockname()[1]}",
        }


def _value(case: Case, env: dict[str, str]) -> str:
    return {"IN_USE": env["in_use"], "DIRECTORY": env["adir"]}.get(case.value, case.value)


def write_config(case: Case | None, env: dict[str, str], name: str) -> Path:
    """A valid file (L3Agent, DHCPAgent and Dump loaded) with ``case`` applied."""
    sections: dict[str, dict[str, str]] = {
        o.DAEMON: {
            "plugins": "L3Agent DHCPAgent Dump",
            "rpchost": "127.0.0.1",
            "pidfile": f"{env['dir']}/{name}.pid",
            "logfile": f"{env['dir']}/{name}.log",
        },
        o.L3: {"conffile": env["neutron_conf"]},
        o.DHCP: {"conffile": env["neutron_conf"]},
        o.DUMP: {"queue": "neutron"},
    }
    if case is not None:
        sections[case.section][case.option] = _value(case, env)
    path = Path(env["dir"]) / f"{name}.conf"
    text = "".join(
        f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items())
        for s, opts in sections.items()
    )
    path.write_text(text)
    return path


def assert_refused(status: int, stderr: str, path: Path, case: Case, env: dict[str, str]) -> None:
    assert status == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    head = f"rpcdaemon: error: {path}: [{case.section}]: {case.option}: "
    assert line.startswith(head), line
    shown = _value(case, env).strip()
    if any(ch.isalnum() for ch in shown) and len(shown) < 40 and "@" not in shown:
        assert shown in line, line


def test_the_base_file_is_valid(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", env["clouds"])
    path = write_config(None, env, "base")
    assert cli.main(["check-config", "-c", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_config_and_run_refuse_in_one_line(
    case: Case,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", env["clouds"])

    def must_not_start(*_args: object, **_kw: object) -> int:
        raise AssertionError("a refused config reached the daemon")

    monkeypatch.setattr(cli, "_run", must_not_start)
    path = write_config(case, env, f"case{CASES.index(case)}")
    for argv in (["check-config", "-c", str(path)], ["-c", str(path), "-d"]):
        status = cli.main(argv)
        captured = capsys.readouterr()
        if argv[0] == "check-config" and case.value == "IN_USE":
            # where the daemon runs it holds the port: check-config warns, run refuses
            assert status == 0 and "in use" in captured.err, captured.err
            continue
        assert captured.out == ""
        assert_refused(status, captured.err, path, case, env)


def _representatives() -> list[Case]:
    seen: set[str] = set()
    picked: list[Case] = []
    for case in CASES:
        key = case.kind if case.kind != "range" else f"range-{case.option}"
        if key in seen or case.value == "":
            continue
        if case.kind == "range" and case.option not in ("check_interval", "prefetch", "timeout"):
            continue
        seen.add(key)
        picked.append(case)
    extra = [
        Case(o.DAEMON, "metrics_address", "IN_USE", "metrics_address"),
        Case(o.DAEMON, "coordination_url", "nosuch://x", "coordination_url"),
        Case(o.DAEMON, "rpchost", "amqp://g:g@[::1:5672//", "rpchost"),
        Case(o.DAEMON, "queue_expire", "1e306", "range"),
    ]
    return picked + [c for c in extra if c in CASES and c not in picked]


REPRESENTATIVES = _representatives()


@pytest.mark.parametrize("mode", ["check-config", "foreground", "detached"])
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=[c.id for c in REPRESENTATIVES])
def test_the_command_refuses_in_one_line(case: Case, mode: str, env: dict[str, str]) -> None:
    path = write_config(case, env, f"proc-{mode}-{REPRESENTATIVES.index(case)}")
    argv = {
        "check-config": ["check-config", "-c", str(path)],
        "foreground": ["-c", str(path), "-d"],
        "detached": ["-c", str(path)],
    }[mode]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    child_env["OS_CLIENT_CONFIG_FILE"] = env["clouds"]
    result = subprocess.run(
        [sys.executable, "-m", "rpcdaemon", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env,
    )
    if mode == "check-config" and case.value == "IN_USE":
        # where the daemon runs it holds the port: check-config warns, run refuses
        assert result.returncode == 0 and "in use" in result.stderr, result.stderr
        return
    assert result.stdout == ""
    assert_refused(result.returncode, result.stderr, path, case, env)
    assert not Path(f"{env['dir']}/proc-{mode}-{REPRESENTATIVES.index(case)}.pid").exists()
