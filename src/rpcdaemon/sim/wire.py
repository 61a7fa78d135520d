"""oslo.messaging's wire format, as neutron 29 writes it (compare /work/shared/wire/*.json).

Pure builders: a message dict in, the envelope string and AMQP properties out. No kombu here.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from typing import Any

from rpcdaemon.sim.resources import context_time

REPORT_STATE_TOPIC = "q-reports-plugin"
NOTIFICATION_TOPIC = "notifications.info"

# what oslo.messaging's rabbit driver sets on every message (delivery_mode 2 = persistent)
BASE_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "delivery_mode": 2,
    "priority": 0,
}


def context(*, now: float, project_id: str | None = None) -> dict[str, Any]:
    """The 23 ``_context_*`` keys of an admin context (agents: no project; the API: noauth's)."""
    identity = f"- {project_id or '-'} - - -"
    return {
        "_context_user": None,
        "_context_project_id": project_id,
        "_context_system_scope": None,
        "_context_project": project_id,
        "_context_domain": None,
        "_context_user_domain": None,
        "_context_project_domain": None,
        "_context_is_admin": True,
        "_context_read_only": False,
        "_context_show_deleted": False,
        "_context_auth_token": None,
        "_context_request_id": f"req-{uuid.uuid4()}",
        "_context_global_request_id": None,
        "_context_resource_uuid": None,
        "_context_roles": ["member", "admin", "reader"],
        "_context_user_identity": identity,
        "_context_is_admin_project": True,
        "_context_user_id": None,
        "_context_timestamp": context_time(now),
        "_context_project_name": None,
        "_context_user_name": None,
        "_context_has_global_access": True,
        "_context_can_set_project_id": True,
    }


def envelope(message: Mapping[str, Any]) -> str:
    """oslo.messaging envelope 2.0: the message is a JSON string inside a JSON object."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


def rpc_message(
    method: str,
    args: Mapping[str, Any],
    *,
    now: float,
    version: str = "1.0",
    call: bool = False,
    project_id: str | None = None,
) -> dict[str, Any]:
    """An RPC cast, or a call (with ``_msg_id``, ``_reply_q``, ``_timeout``)."""
    message: dict[str, Any] = {"method": method, "args": dict(args), "version": version}
    if call:
        message["_msg_id"] = uuid.uuid4().hex
        message["_reply_q"] = f"reply_{uuid.uuid4().hex}"
        message["_timeout"] = None
    message["_unique_id"] = uuid.uuid4().hex
    message.update(context(now=now, project_id=project_id))
    return message


def report_state(
    agent_state: Mapping[str, Any], *, now: float, reply_q: str, start_flag: bool = False
) -> dict[str, Any]:
    """What an L3/DHCP agent sends every report_interval: a ``report_state`` call, version 1.4.

    ``start_flag: true`` sits inside agent_state on the first report after the agent started.
    """
    state = dict(agent_state)
    if start_flag:
        state["start_flag"] = True
    agent_time = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    )
    message = rpc_message(
        "report_state",
        {"agent_state": {"agent_state": state}, "time": agent_time},
        now=now,
        version="1.4",
        call=True,
    )
    message["_reply_q"] = reply_q
    return message


def notification(
    event_type: str,
    payload: Mapping[str, Any],
    *,
    now: float,
    publisher_id: str,
    project_id: str | None = "fake_project_id",
) -> dict[str, Any]:
    """An oslo.messaging notification (routing key ``notifications.info``)."""
    message: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": "INFO",
        "payload": dict(payload),
        "timestamp": context_time(now),
        "_unique_id": uuid.uuid4().hex,
    }
    message.update(context(now=now, project_id=project_id))
    return message


def agent_state_of(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The ``agent_state`` an agent reports, from its API record."""
    state: dict[str, Any] = {
        "binary": agent["binary"],
        "topic": agent["topic"],
        "agent_type": agent["agent_type"],
        "availability_zone": agent["availability_zone"],
        "configurations": dict(agent["configurations"]),
        "host": agent["host"],
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{agent['agent_type']}/{agent['host']}")),
    }
    return state


def decode(body: bytes | str) -> dict[str, Any] | None:
    """The inner message of an oslo envelope (or a bare 1.0 message); None if not one."""
    try:
        outer = json.loads(body)
        if isinstance(outer, dict) and "oslo.message" in outer:
            inner = json.loads(outer["oslo.message"])
        else:
            inner = outer
    except (ValueError, TypeError):
        return None
    return inner if isinstance(inner, dict) else None


def rpc_reply(msg_id: str, *, result: Any = None, failure: str | None = None) -> dict[str, Any]:
    """What an oslo.messaging RPC server sends back for one call (amqpdriver's
    ``_send_reply``): the result or a serialised failure, ``ending``, the caller's msg id."""
    return {
        "result": result,
        "failure": failure,
        "ending": True,
        "_msg_id": msg_id,
        "_unique_id": uuid.uuid4().hex,
    }


def remote_failure(cls: str, message: str) -> str:
    """A remote exception as oslo.messaging serialises it (``serialize_remote_exception``):
    a JSON string naming its class and module, with the message and a traceback."""
    return json.dumps(
        {
            "class": cls,
            "module": "oslo_messaging.rpc.dispatcher",
            "message": message,
            "tb": [
                "Traceback (most recent call last):\n",
                f"oslo_messaging.rpc.dispatcher.{cls}: {message}\n",
            ],
            "args": [message],
            "kwargs": {},
        }
    )
