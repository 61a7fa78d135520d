"""Dump: redaction, the JMESPath filter, the 2014 filter refused, the three outputs."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon.adapters.codec import decode
from rpcdaemon.core.events import BusMessage, MessageKind
from rpcdaemon.plugins import jsontext
from rpcdaemon.plugins.base import Binding
from rpcdaemon.plugins.dump import DumpPlugin, compile_filter, message_view
from rpcdaemon.plugins.redact import MASK, redact
from rpcdaemon.settings import DaemonSettings, DumpSettings, Settings

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"


def capture(name: str) -> BusMessage:
    cap = json.loads((WIRE / name).read_text())
    message = decode(
        cap["raw_body"],
        content_type=cap["content_type"],
        content_encoding=cap["content_encoding"],
        exchange=cap["delivery_info"]["exchange"],
        routing_key=cap["delivery_info"]["routing_key"],
        properties=cap["properties"],
        received_at=1.0,
    )
    assert isinstance(message, BusMessage)
    return message


def secret_call() -> BusMessage:
    message = decode(
        json.dumps(
            {
                "method": "report_state",
                "args": {
                    "agent_state": {
                        "agent_state": {
                            "host": "net1",
                            "agent_type": "L3 agent",
                            "configurations": {
                                "admin_password": "hunter2",
                                "nested": [{"db_Secret": "s1", "keep": "visible"}],
                                "transport_url": "rabbit://neutron:rabbitpw@10.0.0.5:5672/",
                                "empty_token": None,
                            },
                        }
                    },
                    "time": "2026-11-24T05:24:48.261649",
                },
                "_msg_id": "m1",
                "_context_auth_token": "gAAAAAB-keystone-token",
                "_context_user_name": "admin",
            }
        ),
        content_type="application/json",
        content_encoding="utf-8",
        exchange="neutron",
        routing_key="q-reports-plugin",
        properties={"content_type": "application/json", "expiration": "30000"},
        received_at=1.0,
    )
    assert isinstance(message, BusMessage)
    return message


def make(
    *,
    foreground: bool = False,
    filter: str | None = None,
    output: str | None = None,
    stdout: io.StringIO | None = None,
    **dump: Any,
) -> DumpPlugin:
    settings = Settings(
        path="test.conf",
        daemon=DaemonSettings(plugins=("Dump",), foreground=foreground),
        dump=DumpSettings(filter=filter, output=output, **dump),
    )
    return DumpPlugin(settings, stdout=stdout)


def printed(out: io.StringIO) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    text, docs, i = out.getvalue(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


# -- redaction ------------------------------------------------------------------------------


def test_redact_nested_keys_keeps_shape_and_nulls() -> None:
    view = redact(message_view(secret_call()), ("token", "password", "secret"))
    conf = view["args"]["agent_state"]["agent_state"]["configurations"]
    assert conf["admin_password"] == MASK
    assert conf["nested"] == [{"db_Secret": MASK, "keep": "visible"}]
    assert conf["empty_token"] is None  # a null stays null
    assert conf["transport_url"] == "rabbit://neutron:***@10.0.0.5:5672/"
    assert view["context"]["auth_token"] == MASK
    assert view["context"]["user_name"] == "admin"
    assert "hunter2" not in json.dumps(view) and "gAAAAAB" not in json.dumps(view)


def test_captured_null_auth_token_stays_null() -> None:
    view = redact(message_view(capture("report_state_call__L3_or_DHCP_agent.json")), ("token",))
    assert view["context"]["auth_token"] is None
    assert view["method"] == "report_state"


@given(
    st.recursive(
        st.none() | st.text(max_size=5) | st.integers(),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "Token", "my_password", "x"]), c, max_size=3)
        ),
        max_leaves=15,
    )
)
def test_redact_never_leaves_a_secret_value(value: Any) -> None:
    def check(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("Token", "my_password"):
                    assert item is None or item == MASK
                else:
                    check(item)
        elif isinstance(node, list):
            for item in node:
                check(item)

    check(redact(value, ("token", "password")))


# -- the filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "name", "expected"),
    [
        ("method == 'report_state'", "report_state_cast.json", True),
        ("method == 'report_state'", "notification_network.create.end.json", False),
        ("kind == 'rpc_call'", "report_state_call__L3_or_DHCP_agent.json", True),
        ("kind == 'rpc_call'", "report_state_cast.json", False),
        (
            "args.agent_state.agent_state.agent_type == 'L3 agent'",
            "report_state_call__L3_or_DHCP_agent.json",
            True,
        ),
        ("starts_with(event_type, 'network.')", "notification_network.create.end.json", True),
        ("payload.network.id", "notification_network.create.end.json", True),
        ("payload.network.id", "notification_router.delete.end.json", False),
        ("contains(to_string(@), 'net1')", "report_state_call__L3_or_DHCP_agent.json", True),
        ("properties.expiration == '3000'", "report_state_call__L3_or_DHCP_agent.json", True),
        ("context.is_admin", "report_state_cast.json", True),
    ],
)
def test_filter_true_and_false(expression: str, name: str, expected: bool) -> None:
    view = redact(message_view(capture(name)), ("token",))
    assert compile_filter(expression).matches(view) is expected


def test_filter_sees_redacted_values_only() -> None:
    view = redact(message_view(secret_call()), ("token",))
    assert not compile_filter("contains(to_string(@), 'gAAAAAB')").matches(view)


@pytest.mark.parametrize(
    ("old", "shown"),
    [
        ("message['method'] == 'report_state'", "method == 'report_state'"),
        ("'report_state' in str(body)", "contains(to_string(@), 'report_state')"),
        (
            "message['args']['agent_state']['agent_state']['host'] == 'net1' and "
            "message['_context_is_admin'] == True",
            "args.agent_state.agent_state.host == 'net1' && context.is_admin == `true`",
        ),
        ('message["method"] == "report_state"', "method == 'report_state'"),
        ("body.get('method') == 'report_state'", "method == 'report_state'"),
    ],
)
def test_2014_python_expression_filter_is_refused_with_the_new_syntax(old: str, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_filter(old)
    text = str(info.value)
    assert "\n" not in text
    assert "2014 Python-expression filter" in text
    assert shown in text or "method == 'report_state'" in text
    if shown != "method == 'report_state'" or "method" in old:
        compile_filter(shown)  # what we suggest is itself valid


def test_translation_is_exact_for_the_classic_filter() -> None:
    with pytest.raises(ValueError, match=r"e\.g\. method == 'report_state' \(fields"):
        compile_filter("message['method'] == 'report_state'")


@pytest.mark.parametrize("bad", ["method ==", "", "   ", "[?", "foo(bar)"])
def test_invalid_jmespath_is_refused_on_one_line(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_filter(bad)
    assert "\n" not in str(info.value)
    assert "method == 'report_state'" in str(info.value)


def test_jmespath_truthiness_zero_is_true_empty_is_false() -> None:
    assert compile_filter("a").matches({"a": 0})
    assert not compile_filter("a").matches({"a": []})
    assert not compile_filter("a").matches({"a": ""})
    assert not compile_filter("a").matches({"a": False})


# -- the plugin -----------------------------------------------------------------------------


def test_bindings_default_to_neutron_hash() -> None:
    assert tuple(make().bindings()) == (Binding("neutron", "#"),)
    assert tuple(make(queue="quantum", routing_key="q-plugin").bindings()) == (
        Binding("quantum", "q-plugin"),
    )


def test_foreground_prints_pretty_sorted_json_to_stdout() -> None:
    out = io.StringIO()
    plugin = make(foreground=True, stdout=out)
    plugin.observe(secret_call())
    text = out.getvalue()
    assert text.startswith("{\n  ")  # indent 2
    [doc] = printed(out)
    assert list(doc) == sorted(doc)
    assert doc["kind"] == MessageKind.RPC_CALL.value and doc["method"] == "report_state"
    assert doc["context"]["auth_token"] == MASK
    assert "hunter2" not in text and "rabbitpw" not in text
    assert doc["fields"]["_msg_id"] == "m1"
    assert doc["properties"]["expiration"] == "30000"


def test_filter_applies_before_output() -> None:
    out = io.StringIO()
    plugin = make(foreground=True, stdout=out, filter="kind == 'notification'")
    plugin.observe(capture("report_state_cast.json"))
    plugin.observe(capture("notification_network.create.end.json"))
    docs = printed(out)
    assert [d["event_type"] for d in docs] == ["network.create.end"]


def test_output_file_gets_one_json_line_per_message(tmp_path: Path) -> None:
    target = tmp_path / "dump.jsonl"
    target.write_text('{"earlier": true}\n')
    plugin = make(output=str(target), foreground=True, stdout=io.StringIO())
    names = ["report_state_cast.json", "notification_router.delete.end.json"]
    for name in names:
        plugin.observe(capture(name))
        # flushed per line: readable before close
        assert target.read_text().count("\n") == 1 + names.index(name) + 1
    plugin.close()
    lines = target.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": True}  # appended, not truncated
    docs = [json.loads(line) for line in lines[1:]]
    assert [d["method"] or d["event_type"] for d in docs] == ["report_state", "router.delete.end"]


def test_daemon_mode_logs_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    plugin = make(foreground=False)
    caplog.set_level(logging.DEBUG, logger="rpcdaemon.plugins.dump")
    plugin.observe(secret_call())
    records = [r for r in caplog.records if r.name == "rpcdaemon.plugins.dump"]
    assert [r.levelno for r in records] == [logging.DEBUG]
    doc = json.loads(records[0].getMessage())
    assert doc["method"] == "report_state" and doc["context"]["auth_token"] == MASK


def test_daemon_mode_is_silent_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    plugin = make(foreground=False)
    caplog.set_level(logging.INFO, logger="rpcdaemon.plugins.dump")
    plugin.observe(secret_call())
    assert not [r for r in caplog.records if r.name == "rpcdaemon.plugins.dump"]


def test_a_failing_filter_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    plugin = make(foreground=True, stdout=out, filter="starts_with(event_type, 'network.')")
    plugin.observe(capture("report_state_cast.json"))  # event_type is null: a type error
    plugin.observe(capture("notification_network.create.end.json"))
    assert [d["event_type"] for d in printed(out)] == ["network.create.end"]
    assert any("filter" in r.getMessage() for r in caplog.records)


def test_constructor_refuses_an_old_filter() -> None:
    with pytest.raises(ValueError, match="method == 'report_state'"):
        make(filter="message['method'] == 'report_state'")


def test_extra_redact_words_from_settings() -> None:
    out = io.StringIO()
    plugin = make(foreground=True, stdout=out, redact=("user_name",))
    plugin.observe(secret_call())
    [doc] = printed(out)
    assert doc["context"]["user_name"] == MASK
    assert doc["context"]["auth_token"] == MASK  # always, whatever the list says


def test_amqp_timestamps_and_bytes_in_properties_are_printable_and_filterable() -> None:
    import datetime

    message = decode(
        b"",
        content_type=None,
        content_encoding=None,
        exchange="e",
        routing_key="r",
        properties={},
        received_at=0.0,
    )
    assert not isinstance(message, BusMessage)  # an empty body is rejected
    base = capture("report_state_cast.json")
    stamped = BusMessage(
        kind=base.kind,
        exchange=base.exchange,
        routing_key=base.routing_key,
        envelope_version=base.envelope_version,
        received_at=base.received_at,
        method=base.method,
        args=base.args,
        context=base.context,
        body=base.body,
        properties={
            "timestamp": datetime.datetime(2026, 11, 24, 5, 24, 49),
            "application_headers": {"raw": b"bytes"},
        },
    )
    out = io.StringIO()
    plugin = make(foreground=True, stdout=out, filter="contains(to_string(@), '2026-11-24')")
    plugin.observe(stamped)
    [doc] = printed(out)
    assert doc["properties"]["timestamp"] == "2026-11-24T05:24:49"
    assert doc["properties"]["application_headers"] == {"raw": "bytes"}


# -- issue 9: double quotes, depth, file mode -----------------------------------------------


@pytest.mark.parametrize(
    ("old", "fixed"),
    [
        ('method == "report_state"', "method == 'report_state'"),
        ('"report_state" == method', "'report_state' == method"),
        (
            'args.agent_state.agent_state.agent_type == "L3 agent" && kind != "reply"',
            "args.agent_state.agent_state.agent_type == 'L3 agent' && kind != 'reply'",
        ),
    ],
)
def test_a_double_quoted_string_is_refused_with_the_right_spelling(old: str, fixed: str) -> None:
    compile_filter(old.replace('"', "'"))  # the right spelling is accepted
    with pytest.raises(ValueError) as info:
        compile_filter(old)
    text = str(info.value)
    assert "\n" not in text and fixed in text and "single quotes" in text
    # and the mistake really did match the wrong messages: method == <field report_state>
    view = redact(message_view(capture("notification_network.create.end.json")), ())
    assert jmespath.compile(old).search(view) is True  # a notification!
    assert compile_filter(fixed).expression.search(view) is False


@pytest.mark.parametrize(
    "good",
    [
        "properties.\"content-type\" == 'application/json'",
        "@.\"method\" == 'report_state'",
        'args."agent-state".host',
        "contains(keys(@), 'method')",
    ],
)
def test_quoted_field_names_in_paths_are_still_accepted(good: str) -> None:
    compile_filter(good)


def deep_message(depth: int) -> BusMessage:
    base = secret_call()
    deep: Any = {"password": "hunter2", "leaf": "visible"}
    for level in range(depth):
        deep = [deep] if level % 2 else {"k": deep}
    args = {**base.args, "deep": deep}
    return dataclasses.replace(base, args=args, body={**base.body, "args": args})


@pytest.mark.parametrize("depth", [600, 5000])
def test_a_deeply_nested_message_is_printed_redacted(depth: int, tmp_path: Path) -> None:
    out = io.StringIO()
    make(foreground=True, stdout=out, filter="method == 'report_state'").observe(
        deep_message(depth)
    )
    text = out.getvalue()
    assert "visible" in text and "hunter2" not in text and '"password": "***"' in text
    assert text.count("[") >= depth // 2 and text.startswith("{\n  ")
    target = tmp_path / "dump.jsonl"
    plugin = make(output=str(target))
    plugin.observe(deep_message(depth))
    plugin.close()
    line = target.read_text()
    assert line.count("\n") == 1 and "visible" in line and "hunter2" not in line


def test_the_output_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "dump.jsonl"
    old = os.umask(0)
    try:
        plugin = make(output=str(target), foreground=True, stdout=io.StringIO())
        plugin.observe(capture("report_state_cast.json"))
        plugin.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


JSON_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
    max_leaves=20,
)


@given(JSON_TREES, st.sampled_from([None, 2]))
def test_the_iterative_encoder_writes_what_json_writes(value: Any, indent: int | None) -> None:
    assert jsontext._dumps(value, indent) == json.dumps(value, sort_keys=True, indent=indent)
    assert jsontext._to_jsonable(value) == json.loads(json.dumps(value))
