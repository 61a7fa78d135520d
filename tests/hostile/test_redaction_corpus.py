"""The redaction corpus: every secret below contains MARK; no output may show it.

Each case goes through every sink that prints bus or log content:

* Dump: pretty JSON on stdout (foreground), JSON lines to ``[Dump] output``, and the daemon
  log at DEBUG (text and json formats, through the real formatter);
* the daemon log: a rejection that quotes the content (``%r``), an exception whose message
  holds it (with its traceback), text and json formats.

A case also names strings that must stay visible (host names, user names, other options), so
that masking everything would fail too.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpcdaemon import logsetup
from rpcdaemon.adapters.codec import decode
from rpcdaemon.core.events import BusMessage
from rpcdaemon.plugins.dump import DumpPlugin
from rpcdaemon.settings import DaemonSettings, DumpSettings, Settings

MARK = "SEKRIT"

# (name, where the value goes, value, strings that must stay visible)
# where: "conf" = args.agent_state.agent_state.configurations, "context" = _context_*,
# "args" = args, "headers" = AMQP application_headers
STRUCT_CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("context auth_token", "context", {"auth_token": f"gAAAA{MARK}"}, ("admin",)),
    ("admin_password", "conf", {"admin_password": f"{MARK}1"}, ()),
    (
        "nested db_Secret",
        "conf",
        {"nested": [{"db_Secret": MARK, "keep": "visible"}]},
        ("visible",),
    ),
    ("Authorization in context", "context", {"Authorization": f"Bearer {MARK}"}, ()),
    ("authorization in args", "args", {"headers": {"authorization": f"Basic {MARK}=="}}, ()),
    (
        "Authorization in AMQP headers",
        "headers",
        {"Authorization": f"Bearer {MARK}", "x-trace": "t-1"},
        ("t-1",),
    ),
    ("Proxy-Authorization", "headers", {"Proxy-Authorization": f"Basic {MARK}"}, ()),
    ("X-Auth-Token header", "headers", {"X-Auth-Token": f"{MARK}tok"}, ()),
    ("private_key", "conf", {"private_key": f"-----BEGIN KEY-----{MARK}"}, ()),
    ("ssh_key", "conf", {"ssh_key": f"ssh-ed25519 {MARK}"}, ()),
    ("api_key", "conf", {"api_key": f"{MARK}k"}, ()),
    ("apiKey camel case", "conf", {"apiKey": f"{MARK}k"}, ()),
    ("X-API-Key", "headers", {"X-API-Key": f"{MARK}k"}, ()),
    ("psk", "conf", {"psk": f"{MARK}psk"}, ()),
    ("ipsec_psk", "conf", {"ipsec_psk": f"{MARK}psk"}, ()),
    ("passphrase", "conf", {"passphrase": f"{MARK} words"}, ()),
    ("pass", "conf", {"pass": f"{MARK}p"}, ()),
    ("db_pass", "conf", {"DB_PASS": f"{MARK}p"}, ()),
    ("pwd", "conf", {"pwd": f"{MARK}p"}, ()),
    ("admin_pwd", "conf", {"admin_pwd": f"{MARK}p"}, ()),
    ("access_key", "conf", {"aws_access_key": f"{MARK}"}, ()),
    ("Cookie", "headers", {"Cookie": f"session={MARK}"}, ()),
    ("a whole credentials object", "conf", {"credentials": {"u": "x", "p": MARK}}, ()),
    ("a list of secrets", "conf", {"passwords": [MARK, MARK]}, ()),
    ("headers as pairs", "args", {"headers": [["Authorization", f"Bearer {MARK}"]]}, ()),
    ("secret in a key name", "conf", {f"rabbit://u:{MARK}@h1:5672/": 1}, ("h1:5672",)),
    ("600 levels deep", "deep", {"password": MARK, "n": 600}, ()),
    ("5000 levels deep", "deep", {"token": MARK, "n": 5000}, ()),
]

TEXT_CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("transport_url", f"rabbit://neutron:{MARK}@10.0.0.5:5672/", ("10.0.0.5:5672", "neutron")),
    (
        "multi-host transport_url",
        f"rabbit://u:{MARK}1@h1:5672,u:{MARK}2@h2:5672,u:{MARK}3@h3:5672/neutron",
        ("h1:5672", "h2:5672", "h3:5672"),
    ),
    ("password with /", f"rabbit://u:ab/{MARK}/cd@h1:5672/", ("h1:5672",)),
    ("password with @", f"rabbit://u:ab@{MARK}@h1:5672/", ("h1:5672",)),
    ("password with / and @", f"amqp://u:a/b@{MARK}:x@h1//", ("h1",)),
    ("password with , (multi-host)", f"rabbit://u:a,{MARK}@h1,u:b@h2/", ("h2",)),
    ("password with :", f"amqp://guest:a:{MARK}@h1:5672//", ("h1:5672", "guest")),
    ("empty user", f"redis://:{MARK}@redis1:6379/0", ("redis1:6379",)),
    ("SQL connection", f"mysql+pymysql://neutron:{MARK}@db1/neutron?charset=utf8", ("db1",)),
    ("libpq DSN", f"host=db1 port=5432 password={MARK} dbname=neutron", ("db1", "dbname")),
    ("libpq DSN quoted", f"host=db1 password='se cret {MARK}' dbname=n", ("db1", "dbname")),
    ("ODBC DSN", f"Server=db1;Uid=neutron;Pwd={MARK};", ("db1", "Uid=neutron")),
    ("token in a URL query", f"https://keystone1:5000/v3?token={MARK}&x=1", ("keystone1", "x=1")),
    ("access_token in a URL", f"https://h1/cb?code=1&access_token={MARK}#f", ("h1",)),
    ("X-Auth-Token in text", f"GET /v2.0/agents X-Auth-Token: {MARK} Host: n1", ("/v2.0/agents",)),
    ("Authorization in text", f"Authorization: Bearer {MARK}\r\nHost: n1", ("Host",)),
    ("Authorization in a dict repr", f"{{'Authorization': 'Basic {MARK}', 'k': 1}}", ("'k': 1",)),
    ("password in a dict repr", f"{{'host': 'net1', 'password': '{MARK}'}}", ("net1",)),
    ("JSON in a string", json.dumps({"host": "net1", "password": MARK}), ("net1",)),
    ("JSON in JSON", json.dumps(json.dumps({"token": MARK, "host": "net1"})), ("net1",)),
    ("yaml-ish", f"admin_password: {MARK}\nhost: net1", ("net1",)),
    ("command line", f"neutron --os-password {MARK} agent-list", ("agent-list",)),
    ("command line =", f"neutron --os-token={MARK} agent-list", ("agent-list",)),
    ("client_secret=", f"client_id=c1&client_secret={MARK}", ("client_id=c1",)),
]


def _message(where: str, value: dict[str, Any]) -> BusMessage:
    state: dict[str, Any] = {"host": "net1", "agent_type": "L3 agent", "configurations": {}}
    body: dict[str, Any] = {
        "method": "report_state",
        "args": {"agent_state": {"agent_state": state}},
        "_msg_id": "m1",
        "_context_user_name": "admin",
    }
    properties: dict[str, Any] = {"content_type": "application/json"}
    deep: Any = None
    if where == "deep":  # the codec refuses such nesting; Dump must print it anyway
        deep = {k: v for k, v in value.items() if k != "n"}
        for _ in range(value["n"]):
            deep = [deep]
    elif where == "conf":
        state["configurations"] = value
    elif where == "context":
        body.update({f"_context_{k}": v for k, v in value.items()})
    elif where == "args":
        body["args"].update(value)
    else:
        properties["application_headers"] = value
    message = decode(
        json.dumps(body),
        content_type="application/json",
        content_encoding="utf-8",
        exchange="neutron",
        routing_key="q-reports-plugin",
        properties=properties,
        received_at=1.0,
    )
    assert isinstance(message, BusMessage), message
    if deep is not None:
        args = {"agent_state": {"agent_state": {**state, "configurations": {"deep": deep}}}}
        message = dataclasses.replace(message, args=args, body={**message.body, "args": args})
    return message


@pytest.fixture
def log_sinks() -> Iterator[dict[str, io.StringIO]]:
    """The root logger writing through the daemon's formatter, text and json, at DEBUG."""
    root = logging.getLogger()
    level = root.level
    sinks = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = []
    for fmt, out in sinks.items():
        handler = logging.StreamHandler(out)
        handler.setFormatter(logsetup.SafeFormatter(fmt))
        root.addHandler(handler)
        handlers.append(handler)
    root.setLevel(logging.DEBUG)
    dump_logger = logging.getLogger("rpcdaemon.plugins.dump")
    dump_level = dump_logger.level
    dump_logger.setLevel(logging.DEBUG)
    yield sinks
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)
    dump_logger.setLevel(dump_level)


def _dump_outputs(message: BusMessage, tmp_path: Path) -> dict[str, str]:
    pretty = io.StringIO()
    DumpPlugin(
        Settings(path="t", daemon=DaemonSettings(plugins=("Dump",), foreground=True)),
        stdout=pretty,
    ).observe(message)
    lines = tmp_path / "dump.jsonl"
    plugin = DumpPlugin(
        Settings(path="t", daemon=DaemonSettings(), dump=DumpSettings(output=str(lines)))
    )
    plugin.observe(message)
    plugin.close()
    DumpPlugin(Settings(path="t", daemon=DaemonSettings())).observe(message)  # to the log
    return {"dump stdout": pretty.getvalue(), "dump output file": lines.read_text()}


def _check(outputs: dict[str, str], keep: tuple[str, ...], *, nonempty: bool = True) -> None:
    for sink, text in outputs.items():
        assert MARK not in text, f"{sink} leaked: {text[:2000]}"
        if nonempty:
            assert text.strip(), sink
    joined = "\n".join(outputs.values())
    for visible in keep:
        assert visible in joined, f"{visible!r} was masked too: {joined[:2000]}"


@pytest.mark.parametrize(("name", "where", "value", "keep"), STRUCT_CASES, ids=lambda x: x)
def test_struct_case_never_leaks(
    name: str,
    where: str,
    value: dict[str, Any],
    keep: tuple[str, ...],
    tmp_path: Path,
    log_sinks: dict[str, io.StringIO],
) -> None:
    message = _message(where, value)
    outputs = _dump_outputs(message, tmp_path)
    outputs |= {f"dump via log ({k})": v.getvalue() for k, v in log_sinks.items()}
    _check(outputs, keep)
    assert '"host": "net1"' in outputs["dump output file"]  # the shape stays


@pytest.mark.parametrize(("name", "text", "keep"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_case_never_leaks(
    name: str, text: str, keep: tuple[str, ...], tmp_path: Path, log_sinks: dict[str, io.StringIO]
) -> None:
    message = _message("conf", {"note": text, "transport_url": text})
    outputs = _dump_outputs(message, tmp_path)
    log = logging.getLogger("rpcdaemon.adapters.codec")
    log.warning("rejected a message from %s: %r", "net1", {"host": text})
    log.info("%s", text)
    try:
        raise ValueError(f"cannot parse {text}")
    except ValueError:
        log.exception("decoding failed")
    outputs |= {f"log ({k})": v.getvalue() for k, v in log_sinks.items()}
    _check(outputs, keep)
    for line in log_sinks["json"].getvalue().splitlines():
        json.loads(line)  # still one object a line


def test_the_corpus_is_the_size_the_readme_says() -> None:
    assert len(STRUCT_CASES) + len(TEXT_CASES) == 52
