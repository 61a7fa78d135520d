"""Property tests (Hypothesis) of the redactor and the log sanitiser: secrets never come out,
whatever the shape, depth, separators or neighbours; nothing else is changed; a log record is
always one safe line."""

from __future__ import annotations

import io
import json
import logging
import re
import string
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcdaemon import logsetup
from rpcdaemon.plugins.jsontext import dumps, to_jsonable
from rpcdaemon.plugins.redact import MASK, is_secret_key, redact, redact_text

MARK = "QZX"  # in every secret; the other generated text never holds Q, Z or X
SAFE = "abcdefghijklmnoprstuvwy0123456789 ._-"  # no Q/Z/X, no ':' '=' '@' (no key=value)
PLAIN = st.text(alphabet=SAFE, max_size=12)
SECRET_KEYS = st.sampled_from(
    [
        "password",
        "Password",
        "admin_password",
        "auth_token",
        "X-Auth-Token",
        "Authorization",
        "proxy-authorization",
        "client_secret",
        "private_key",
        "privateKey",
        "ssh_key",
        "api_key",
        "API-KEY",
        "psk",
        "ipsec_psk",
        "passphrase",
        "pass",
        "db_pass",
        "pwd",
        "admin_pwd",
        "credential",
        "passwd",
        "cookie",
    ]
)
PLAIN_KEYS = st.sampled_from(["host", "agent_type", "bypass", "passive", "routing_key", "id"])
SECRET_VALUE = st.builds(lambda a, b: f"{a}{MARK}{b}", PLAIN, PLAIN)


def _tree(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(PLAIN_KEYS, c, max_size=3),
        max_leaves=12,
    )


@st.composite
def trees_with_secrets(draw: st.DrawFn) -> Any:
    """A JSON tree with secret-keyed values planted anywhere, wrapped in up to 3000 levels."""
    secret = st.builds(
        lambda k, v: {k: v},
        SECRET_KEYS,
        SECRET_VALUE
        | st.lists(SECRET_VALUE, max_size=2)
        | st.dictionaries(PLAIN_KEYS, SECRET_VALUE),
    )
    tree = draw(_tree(PLAIN | st.integers() | st.none() | secret))
    depth, period = draw(st.sampled_from([0, 1, 5, 700, 3000])), draw(st.integers(1, 3))
    for level in range(depth):  # lists and objects, mixed
        tree = [tree] if level % period else {"k": tree}
    return tree


@given(trees_with_secrets())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_no_secret_survives_redact_at_any_depth(tree: Any) -> None:
    out = dumps(redact(tree))
    assert MARK not in out


@given(_tree(PLAIN | st.integers() | st.none() | st.booleans()))
@settings(max_examples=300)
def test_redact_changes_nothing_without_secrets(tree: Any) -> None:
    assert redact(tree) == to_jsonable(tree)


@given(trees_with_secrets())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_redact_is_idempotent(tree: Any) -> None:
    once = redact(tree)
    assert dumps(redact(once)) == dumps(once)  # (== on 3000 levels would recurse)


# -- URLs -----------------------------------------------------------------------------------

USER = st.text(alphabet=string.ascii_lowercase + string.digits + "._-", min_size=1, max_size=8)
HOST = st.from_regex(r"\A[a-w][a-w0-9.-]{0,10}\Z").map(str)
# passwords may hold anything a careless operator types, except white space and quotes, and
# not both "@" and "," (then oslo.messaging itself reads two hosts: "u:a@b,c@h" is u:a at b,
# and c at h; such a password only works percent-encoded)
PASSWORD = st.builds(
    lambda a, b: f"{a}{MARK}{b}",
    st.text(alphabet=SAFE.replace(" ", "") + "/@:,;?#%!$&*+[]", max_size=6),
    st.text(alphabet=SAFE.replace(" ", "") + "/@:,;?#%!$&*+[]", max_size=6),
).filter(lambda p: not ("@" in p and "," in p))


@given(
    st.sampled_from(["rabbit", "amqp", "kombu+redis", "mysql+pymysql", "redis", "https"]),
    st.lists(st.tuples(USER, PASSWORD, HOST, st.integers(1, 65535)), min_size=1, max_size=4),
    st.sampled_from(["/", "//", "/neutron?ssl=1", "", "?a=1#x"]),
    st.sampled_from(["", "transport_url = ", "connecting to ", "'", '"', "(", "url="]),
)
@settings(max_examples=400)
def test_no_url_password_survives(
    scheme: str, hosts: list[tuple[str, str, str, int]], tail: str, before: str
) -> None:
    authority = ",".join(f"{u}:{p}@{h}:{port}" for u, p, h, port in hosts)
    url = f"{scheme}://{authority}{tail}"
    text = f"{before}{url} and more"
    out = redact_text(text)
    assert MARK not in out, (text, out)
    assert out.endswith(" and more") and out.startswith(before + scheme + "://")
    last_host = f"{hosts[-1][2]}:{hosts[-1][3]}"
    assert last_host in out  # the host stays readable


@given(
    st.sampled_from(
        ["password", "token", "X-Auth-Token", "os_password", "admin-pwd", "api_key", "secret"]
    ),
    st.sampled_from(["=", ": ", ":", " = ", '": "', "': '", '=\\"']),
    SECRET_VALUE.map(lambda v: v.replace(" ", "")),
    st.sampled_from(["", " next", "&next=1", "; next", "\n", ", next", "'", '"']),
    PLAIN,
)
@settings(max_examples=400)
def test_no_key_value_secret_survives(key: str, sep: str, value: str, after: str, pre: str) -> None:
    text = f"{pre} {key}{sep}{value}{after}"
    out = redact_text(text)
    assert MARK not in out, (text, out)
    assert MASK in out


@given(PLAIN)
def test_plain_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_key_matching_is_stable_under_case_and_separators(noise: str) -> None:
    assert is_secret_key(f"{noise}_password") and is_secret_key(f"{noise}X-AUTH-TOKEN")


def test_a_megabyte_of_hostile_text_is_linear() -> None:
    cases = [
        "a" * 1_000_000 + "=1",
        "password" * 125_000,
        "x=:" * 330_000,
        "--" * 500_000,
        "a://" * 250_000 + "@",
        "\\" * 1_000_000,
        '\\"' * 500_000,
    ]
    for text in cases:
        start = time.perf_counter()
        redact_text(text)
        assert time.perf_counter() - start < 2.0, text[:20]


# -- log records ----------------------------------------------------------------------------

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@given(st.text(), st.sampled_from(["text", "json"]))
@settings(max_examples=400)
def test_any_message_is_one_safe_line(text: str, fmt: str) -> None:
    record = logging.LogRecord(
        "rpcdaemon.x", logging.WARNING, __file__, 1, "host %s", (text,), None
    )
    line = logsetup.SafeFormatter(fmt).format(record)
    assert "\n" not in line and not _FORBIDDEN.search(line)
    line.encode("utf-8")  # never an encoding error (the line would be lost)
    if fmt == "json":
        assert json.loads(line)["level"] == "WARNING"


@given(st.text(min_size=1))
@settings(max_examples=200)
def test_any_message_reaches_a_utf8_file_once(text: str) -> None:
    out = io.BytesIO()
    stream = io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsetup.SafeFormatter("text"))
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "h=%s", (text,), None))
    written = out.getvalue().decode("utf-8")
    assert written.count("\n") == 1 and written.endswith("\n")
