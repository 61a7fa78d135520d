"""``SimCloud``: a thread-safe, in-memory Neutron with Neutron's scheduling rules (no HTTP here).

The state and the agents table live in state.py, routers/networks/subnets in crud.py, the
agent-scheduler rules in scheduling.py. docs/simulator.md lists every rule and its source.
"""

from __future__ import annotations

from rpcdaemon.sim.crud import ResourcesMixin
from rpcdaemon.sim.scheduling import SchedulingMixin
from rpcdaemon.sim.state import SimEvent, SimNeutronError


class SimCloud(SchedulingMixin, ResourcesMixin):
    """Neutron's state and rules. All methods are thread-safe.

    ``SimCloud(agent_down_time=75.0, rpc_response_timeout=10.0, clock=time.time)``: ``alive`` is
    computed from ``clock()`` when read, as Neutron does; binding operations raise
    :class:`SimNeutronError` with the status and NeutronError type Neutron answers with.
    """


__all__ = ["SimCloud", "SimEvent", "SimNeutronError"]
