"""``PUT /v2.0/agents/{id}`` ``admin_state_up``: the one write the operator verbs need
beyond the four scheduling writes of :mod:`rpcdaemon.adapters.neutron`.

Kept apart from the adapter while that module is being reshaped; it goes through the same
SDK network proxy and the same error mapping (:func:`~rpcdaemon.adapters.neutron_errors.translate`).
Setting the state it already has is success (Neutron answers 200 either way).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from openstack import exceptions as os_exc

from rpcdaemon.adapters.neutron_errors import translate
from rpcdaemon.core.errors import PermanentError
from rpcdaemon.core.ids import AgentId

logger = logging.getLogger(__name__)

OP = "set_agent_admin_state"


class AgentAdmin(Protocol):
    def set_agent_admin_state(self, agent_id: AgentId, up: bool) -> None: ...


class SdkAgentAdmin:
    """Over a :class:`~rpcdaemon.adapters.neutron.NeutronAdapter` (its SDK connection)."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def set_agent_admin_state(self, agent_id: AgentId, up: bool) -> None:
        url = f"/agents/{agent_id}"
        try:
            net = self._adapter._net  # authenticates lazily: errors are mapped below
            resp = net.request(
                url,
                "PUT",
                json={"agent": {"admin_state_up": up}},
                raise_exc=False,
                connect_retries=0,
            )
        except Exception as exc:
            err, _ = translate(exc, OP)
            raise err from exc
        if resp.status_code < 400:
            logger.info("agent %s: admin_state_up set to %s", agent_id, str(up).lower())
            return
        try:
            os_exc.raise_from_response(resp)
        except os_exc.HttpException as exc:
            err, _ = translate(exc, OP)
            raise err from exc
        raise PermanentError(f"{OP}: unexpected HTTP {resp.status_code}")  # pragma: no cover
