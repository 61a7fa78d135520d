"""Neutron's resource shapes (agents, routers, networks, subnets) as the real API renders them.

Shapes follow /work/shared/neutron-rig/api_transcript.json (neutron 29). Timestamps: agents use
``"YYYY-MM-DD HH:MM:SS"`` (whole seconds, UTC), other resources ``"YYYY-MM-DDTHH:MM:SSZ"``.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

PROJECT_ID = "fake_project_id"  # what neutron's noauth middleware uses

L3_AGENT = "L3 agent"
DHCP_AGENT = "DHCP agent"
OVS_AGENT = "Open vSwitch agent"
METADATA_AGENT = "Metadata agent"

# agent_type -> (binary, topic), as neutron's agents report them
AGENT_BINARIES: dict[str, tuple[str, str]] = {
    L3_AGENT: ("neutron-l3-agent", "l3_agent"),
    DHCP_AGENT: ("neutron-dhcp-agent", "dhcp_agent"),
    OVS_AGENT: ("neutron-openvswitch-agent", "N/A"),
    METADATA_AGENT: ("neutron-metadata-agent", "N/A"),
}

DVR_MODES = frozenset({"dvr", "dvr_no_external"})
L3_MODES = frozenset({"legacy", "dvr_snat", "dvr", "dvr_no_external"})


def agent_time(ts: float) -> str:
    """An agent timestamp as neutron renders it: UTC, whole seconds (the DB column has none)."""
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def resource_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def context_time(ts: float) -> str:
    """oslo.context / notification timestamp: UTC with microseconds, space separated."""
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def default_configurations(agent_type: str, agent_mode: str) -> dict[str, Any]:
    """What a freshly started agent of this type reports in ``configurations``."""
    if agent_type == L3_AGENT:
        return {
            "agent_mode": agent_mode,
            "ex_gw_ports": 0,
            "extensions": [],
            "floating_ips": 0,
            "handle_internal_only_routers": True,
            "interface_driver": "openvswitch",
            "interfaces": 0,
            "log_agent_heartbeats": False,
            "routers": 0,
        }
    if agent_type == DHCP_AGENT:
        return {
            "dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
            "dhcp_lease_duration": 86400,
            "log_agent_heartbeats": False,
            "networks": 0,
            "ports": 0,
            "subnets": 0,
        }
    if agent_type == OVS_AGENT:
        return {
            "bridge_mappings": {"physnet1": "br-ex"},
            "tunnel_types": ["vxlan"],
            "devices": 0,
            "enable_distributed_routing": False,
            "integration_bridge": "br-int",
        }
    return {"log_agent_heartbeats": False}


def router_body(
    *,
    router_id: str,
    name: str,
    created: float,
    admin_state_up: bool,
    ha: bool,
    distributed: bool,
    availability_zone_hints: list[str],
    availability_zones: list[str],
    revision: int,
) -> dict[str, Any]:
    return {
        "id": router_id,
        "name": name,
        "project_id": PROJECT_ID,
        "tenant_id": PROJECT_ID,
        "admin_state_up": admin_state_up,
        "status": "ACTIVE",
        "external_gateway_info": None,
        "description": "",
        "availability_zones": availability_zones,
        "distributed": distributed,
        "ha": ha,
        "availability_zone_hints": availability_zone_hints,
        "routes": [],
        "flavor_id": None,
        "tags": [],
        "created_at": resource_time(created),
        "updated_at": resource_time(created),
        "revision_number": revision,
    }


def network_body(
    *,
    network_id: str,
    name: str,
    created: float,
    admin_state_up: bool,
    subnets: list[str],
    availability_zone_hints: list[str],
    availability_zones: list[str],
    segmentation_id: int,
    revision: int,
) -> dict[str, Any]:
    return {
        "id": network_id,
        "name": name,
        "tenant_id": PROJECT_ID,
        "project_id": PROJECT_ID,
        "admin_state_up": admin_state_up,
        "mtu": 1450,
        "status": "ACTIVE",
        "subnets": subnets,
        "shared": False,
        "port_security_enabled": True,
        "router:external": False,
        "provider:network_type": "vxlan",
        "provider:physical_network": None,
        "provider:segmentation_id": segmentation_id,
        "is_default": False,
        "availability_zone_hints": availability_zone_hints,
        "availability_zones": availability_zones,
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "description": "",
        "tags": [],
        "created_at": resource_time(created),
        "updated_at": resource_time(created),
        "revision_number": revision,
    }


def subnet_body(
    *,
    subnet_id: str,
    network_id: str,
    name: str,
    cidr: str,
    enable_dhcp: bool,
    created: float,
) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr, strict=False)
    hosts = list(net.hosts()) if net.num_addresses <= 65536 else []
    gateway = str(hosts[0]) if hosts else None
    pools = [{"start": str(hosts[1]), "end": str(hosts[-1])}] if len(hosts) > 2 else []
    return {
        "id": subnet_id,
        "name": name,
        "project_id": PROJECT_ID,
        "tenant_id": PROJECT_ID,
        "network_id": network_id,
        "ip_version": net.version,
        "subnetpool_id": None,
        "enable_dhcp": enable_dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "gateway_ip": gateway,
        "cidr": str(net),
        "allocation_pools": pools,
        "host_routes": [],
        "dns_nameservers": [],
        "description": "",
        "router:external": False,
        "service_types": [],
        "tags": [],
        "created_at": resource_time(created),
        "updated_at": resource_time(created),
        "revision_number": 0,
    }
