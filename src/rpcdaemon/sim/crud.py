"""Routers, networks and subnets: create, read, update, delete, with Neutron's side effects.

Deleting a network unbinds it from every DHCP agent (casting ``network_delete_end`` to each);
deleting a router unbinds it (fanout ``router_deleted``). Notifications ``*.create.end`` /
``*.delete.end`` go out as Neutron emits them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from rpcdaemon.sim import resources as res
from rpcdaemon.sim.state import (
    CloudState,
    NetworkRow,
    RouterRow,
    SimEvent,
    SimNeutronError,
    not_found,
)


def _bad_request(message: str) -> SimNeutronError:
    return SimNeutronError(400, "HTTPBadRequest", message)


class ResourcesMixin(CloudState):
    """CRUD of routers, networks and subnets."""

    # -- routers ---------------------------------------------------------------------------------

    def add_router(
        self,
        name: str = "",
        *,
        ha: bool = False,
        distributed: bool = False,
        availability_zone_hints: Sequence[str] = (),
        admin_state_up: bool = True,
    ) -> dict[str, Any]:
        router = RouterRow(
            id=str(uuid.uuid4()),
            name=name,
            created_at=self._clock(),
            admin_state_up=admin_state_up,
            ha=ha,
            distributed=distributed,
            availability_zone_hints=list(availability_zone_hints),
        )
        with self._lock:
            self._routers[router.id] = router
            body = self._router_dict(router)
        self._emit(
            [SimEvent("notification", "", event_type="router.create.end", payload={"router": body})]
        )
        return body

    def routers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._router_dict(r) for r in self._routers.values()]

    def router(self, router_id: str) -> dict[str, Any]:
        with self._lock:
            return self._router_dict(self._get_router(router_id))

    def update_router(self, router_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            router = self._get_router(router_id)
            for key in ("ha", "distributed"):
                if key in changes and bool(changes[key]) != getattr(router, key):
                    # l3_hamode_db / l3_dvr_db: migrating needs the router disabled first
                    if router.admin_state_up:
                        raise _bad_request(
                            "Cannot change HA attribute of active routers. Please set router "
                            "admin_state_up to False prior to upgrade"
                            if key == "ha"
                            else "Cannot upgrade active router to distributed. Please set router "
                            "admin_state_up to False prior to upgrade"
                        )
                    setattr(router, key, bool(changes[key]))
            if "name" in changes:
                router.name = str(changes["name"])
            if "admin_state_up" in changes:
                router.admin_state_up = bool(changes["admin_state_up"])
            if "availability_zone_hints" in changes:
                router.availability_zone_hints = list(changes["availability_zone_hints"])
            router.revision += 1
            body = self._router_dict(router)
        self._emit(
            [SimEvent("notification", "", event_type="router.update.end", payload={"router": body})]
        )
        return body

    def delete_router(self, router_id: str) -> None:
        with self._lock:
            router = self._get_router(router_id)
            body = self._router_dict(router)
            del self._routers[router_id]
            for agent_id in self._l3.pop(router_id, []):
                self._refresh_counts(agent_id)
        self._emit(
            [
                SimEvent(
                    "fanout", "l3_agent", method="router_deleted", args={"router_id": router_id}
                ),
                SimEvent(
                    "notification",
                    "",
                    event_type="router.delete.end",
                    payload={"router": body, "router_id": router_id},
                ),
            ]
        )

    # -- networks ---------------------------------------------------------------------------------

    def add_network(
        self,
        name: str = "",
        *,
        dhcp: bool = True,
        availability_zone_hints: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Create a network and one IPv4 subnet with ``enable_dhcp=dhcp``."""
        body = self.create_network(name=name, availability_zone_hints=availability_zone_hints)
        with self._lock:
            n = len(self._subnets)
        self.create_subnet(
            network_id=body["id"],
            cidr=f"10.{(n // 256) % 256}.{n % 256}.0/24",
            enable_dhcp=dhcp,
            name=f"{name}-subnet" if name else "",
        )
        return self.network(body["id"])

    def create_network(
        self,
        *,
        name: str = "",
        admin_state_up: bool = True,
        availability_zone_hints: Sequence[str] = (),
    ) -> dict[str, Any]:
        with self._lock:
            self._next_vni += 1
            network = NetworkRow(
                id=str(uuid.uuid4()),
                name=name,
                created_at=self._clock(),
                admin_state_up=admin_state_up,
                availability_zone_hints=list(availability_zone_hints),
                segmentation_id=self._next_vni,
            )
            self._networks[network.id] = network
            body = self._network_dict(network)
        self._emit(
            [
                SimEvent(
                    "notification", "", event_type="network.create.end", payload={"network": body}
                )
            ]
        )
        return body

    def networks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._network_dict(n) for n in self._networks.values()]

    def network(self, network_id: str) -> dict[str, Any]:
        with self._lock:
            return self._network_dict(self._get_network(network_id))

    def update_network(self, network_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            network = self._get_network(network_id)
            if "name" in changes:
                network.name = str(changes["name"])
            if "admin_state_up" in changes:
                network.admin_state_up = bool(changes["admin_state_up"])
            network.revision += 1
            body = self._network_dict(network)
        self._emit(
            [
                SimEvent(
                    "notification", "", event_type="network.update.end", payload={"network": body}
                )
            ]
        )
        return body

    def delete_network(self, network_id: str) -> None:
        """Delete a network: its subnets go, and every DHCP agent hosting it is told."""
        events: list[SimEvent] = []
        with self._lock:
            network = self._get_network(network_id)
            body = self._network_dict(network)
            for subnet_id in [s for s, v in self._subnets.items() if v["network_id"] == network_id]:
                del self._subnets[subnet_id]
            del self._networks[network_id]
            for agent_id in self._dhcp.pop(network_id, []):
                agent = self._agents.get(agent_id)
                self._refresh_counts(agent_id)
                if agent is not None:
                    events.append(
                        SimEvent(
                            "cast",
                            f"{agent.topic}.{agent.host}",
                            method="network_delete_end",
                            args={"payload": {"network_id": network_id, "priority": 2}},
                        )
                    )
        events.append(
            SimEvent(
                "notification",
                "",
                event_type="network.delete.end",
                payload={"network": body, "network_id": network_id},
            )
        )
        self._emit(events)

    # -- subnets ----------------------------------------------------------------------------------

    def create_subnet(
        self,
        *,
        network_id: str,
        cidr: str,
        enable_dhcp: bool = True,
        name: str = "",
        ip_version: int = 4,
    ) -> dict[str, Any]:
        try:
            body = res.subnet_body(
                subnet_id=str(uuid.uuid4()),
                network_id=network_id,
                name=name,
                cidr=cidr,
                enable_dhcp=enable_dhcp,
                created=self._clock(),
            )
        except ValueError as exc:
            raise _bad_request(f"Invalid input for cidr. Reason: {exc}.") from exc
        if body["ip_version"] != ip_version:
            raise _bad_request("Invalid input for operation: cidr does not match ip_version.")
        events: list[SimEvent] = []
        with self._lock:
            network = self._networks.get(network_id)
            if network is None:
                raise not_found("Network", network_id)
            self._subnets[body["id"]] = body
            network.revision += 1
            for agent_id in self._dhcp.get(network_id, []):
                agent = self._agents.get(agent_id)
                self._refresh_counts(agent_id)
                if agent is not None:
                    events.append(
                        SimEvent(
                            "cast",
                            f"{agent.topic}.{agent.host}",
                            method="subnet_create_end",
                            args={"payload": {"subnet": body, "priority": 1}},
                        )
                    )
        events.append(
            SimEvent("notification", "", event_type="subnet.create.end", payload={"subnet": body})
        )
        self._emit(events)
        return dict(body)

    def subnets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._subnets.values()]

    def subnet(self, subnet_id: str) -> dict[str, Any]:
        with self._lock:
            body = self._subnets.get(subnet_id)
            if body is None:
                raise not_found("Subnet", subnet_id)
            return dict(body)

    def update_subnet(self, subnet_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            body = self._subnets.get(subnet_id)
            if body is None:
                raise not_found("Subnet", subnet_id)
            for key in ("name", "enable_dhcp", "description"):
                if key in changes:
                    body[key] = changes[key]
            body["revision_number"] += 1
            return dict(body)

    def delete_subnet(self, subnet_id: str) -> None:
        with self._lock:
            body = self._subnets.pop(subnet_id, None)
            if body is None:
                raise not_found("Subnet", subnet_id)
        self._emit(
            [
                SimEvent(
                    "notification",
                    "",
                    event_type="subnet.delete.end",
                    payload={"subnet": body, "subnet_id": subnet_id},
                )
            ]
        )

    def is_dhcp_network(self, network_id: str) -> bool:
        """True when the network has at least one subnet with DHCP enabled."""
        with self._lock:
            return any(
                s["enable_dhcp"] for s in self._subnets.values() if s["network_id"] == network_id
            )


__all__ = ["ResourcesMixin", "RouterRow"]
