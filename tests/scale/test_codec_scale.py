"""Issue 11: a heartbeat's ``agent_state`` is walked once on the consumer path, not twice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rpcdaemon.adapters import codec
from rpcdaemon.core.events import BusMessage

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"


def captured() -> BusMessage:
    capture = json.loads((WIRE / "report_state_call__L3_or_DHCP_agent.json").read_text())
    message = codec.decode(
        json.dumps(capture["body_json"]).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        exchange="neutron",
        routing_key="q-reports-plugin",
        properties={},
        received_at=1.0,
    )
    assert isinstance(message, BusMessage)
    return message


def count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = codec.check_report_state

    def counted(args: Any) -> str | None:
        calls[0] += 1
        return real(args)

    monkeypatch.setattr(codec, "check_report_state", counted)
    return calls


def test_decode_then_heartbeat_from_checks_the_state_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_checks(monkeypatch)
    message = captured()
    assert codec.heartbeat_from(message, received_wall=2.0) is not None
    assert calls[0] == 1


def test_a_message_built_elsewhere_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    message = captured()
    calls = count_checks(monkeypatch)
    forged = json.loads(json.dumps(message.args))  # equal, but not the object decode checked
    forged["agent_state"]["agent_state"]["configurations"]["routers"] = -1
    copy = dataclasses.replace(message, args=forged)
    assert codec.heartbeat_from(copy, received_wall=2.0) is None  # refused: a negative count
    assert calls[0] == 1
