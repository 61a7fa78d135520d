"""The 2014 rpcdaemon's API call pattern, written afresh for comparison (no 2014 code).

Behaviour reproduced (NEUTRON-HA-LANDSCAPE.md §2.1): one loop; every ``check_interval``
(1 s, slept after the work) each plugin's check runs in turn, one API call at a time.

* L3 check: list the L3 agents; list each agent's routers (one call per agent); remove
  every router of a down agent from it, one call each; list the routers and hand every
  router not on a live agent out round-robin over the live agents (``itertools.cycle``),
  one add per call.
* DHCP check: list the DHCP agents; list each agent's networks (one call per agent);
  remove every network of a down agent from it; add each listed network to every live
  agent that lacks it, one add per call.
* "down" is the API's ``alive`` flag (the 2014 daemon timed heartbeats on the agents'
  clock; for the timing here the API flag is equivalent). No live agent: the check
  returns early. Every call is retried 10 times, 3 s apart, then given up.

The listing calls are the minimum the described behaviour needs, so the idle cost
measured here is a lower bound of the 2014 daemon's.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")

L3_AGENT = "L3 agent"
DHCP_AGENT = "DHCP agent"
RETRIES = 10
RETRY_DELAY = 3.0


class Legacy2014:
    """The 2014 main loop over an openstacksdk connection. ``run`` until ``stop``."""

    def __init__(
        self,
        sdk: Any,
        *,
        l3: bool = True,
        dhcp: bool = True,
        check_interval: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._net = sdk.network
        self._l3 = l3
        self._dhcp = dhcp
        self._check_interval = check_interval
        self.stop = stop or threading.Event()
        self.ticks = 0
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if self._l3:
                self.check_l3()
            if self._dhcp:
                self.check_dhcp()
            self.ticks += 1
            self.stop.wait(self._check_interval)

    # -- the two plugins -------------------------------------------------------------------

    def _agents(self, agent_type: str) -> tuple[list[Any], list[Any]]:
        agents = self._retry(_listing, self._net.agents, agent_type=agent_type) or []
        return [a for a in agents if a.is_alive], [a for a in agents if not a.is_alive]

    def check_l3(self) -> None:
        live, down = self._agents(L3_AGENT)
        if not live:
            logger.warning("No agents up; exiting handler early")
            return
        hosted: dict[str, list[str]] = {}
        for agent in [*live, *down]:
            routers = self._retry(_listing, self._net.agent_hosted_routers, agent) or []
            hosted[agent.id] = [r.id for r in routers]
        for agent in down:
            for router_id in hosted[agent.id]:
                self._retry(self._net.remove_router_from_agent, agent, router_id)
        on_live = {r for a in live for r in hosted[a.id]}
        routers = self._retry(_listing, self._net.routers) or []
        targets = itertools.cycle(live)
        for router in routers:
            if router.id not in on_live:
                self._retry(self._net.add_router_to_agent, next(targets), router.id)

    def check_dhcp(self) -> None:
        live, down = self._agents(DHCP_AGENT)
        if not live:
            logger.warning("No agents up; exiting handler early")
            return
        hosted: dict[str, set[str]] = {}
        for agent in [*live, *down]:
            networks = self._retry(_listing, self._net.dhcp_agent_hosting_networks, agent) or []
            hosted[agent.id] = {n.id for n in networks}
        for agent in down:
            for network_id in sorted(hosted[agent.id]):
                self._retry(self._net.remove_dhcp_agent_from_network, agent, network_id)
        for agent in [*live, *down]:
            for network_id in sorted(hosted[agent.id]):
                for target in live:
                    if network_id not in hosted[target.id]:
                        self._retry(self._net.add_dhcp_agent_to_network, target, network_id)
                        hosted[target.id].add(network_id)

    # -- the 2014 retry ----------------------------------------------------------------------

    def _retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        for attempt in range(1, RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                self.failures += 1
                logger.warning("attempt %d failed: %s", attempt, exc)
                if self.stop.wait(RETRY_DELAY):
                    return None
        logger.error("Retries exhausted. Continuing.")
        return None


def _listing(fn: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any) -> list[Any]:
    """Exhaust an SDK listing generator (the HTTP calls happen here, not at fn())."""
    return list(fn(*args, **kwargs))


def start(legacy: Legacy2014) -> threading.Thread:
    thread = threading.Thread(target=legacy.run, name="legacy2014", daemon=True)
    thread.start()
    return thread


def stop(legacy: Legacy2014, thread: threading.Thread) -> None:
    legacy.stop.set()
    thread.join(30)
