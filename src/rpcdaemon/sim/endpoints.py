"""The /v2.0 resource endpoints: agents, the agent-scheduler extensions, routers, networks, subnets.

Importing this module registers the routes with routes.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.routes import (
    Request,
    Response,
    bad_request,
    body_field,
    body_member,
    listing,
    route,
    show,
)

P = Mapping[str, str]

# -- agents -------------------------------------------------------------------------------------------


@route("GET", "/v2.0/agents")
def list_agents(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.agents(), req, "agents", post_filter="alive")


@route("GET", "/v2.0/agents/{agent_id}")
def show_agent(cloud: SimCloud, req: Request, p: P) -> Response:
    return show(cloud.agent(p["agent_id"]), req, "agent")


@route("PUT", "/v2.0/agents/{agent_id}")
def update_agent(cloud: SimCloud, req: Request, p: P) -> Response:
    changes = body_member(req.body, "agent")
    bad = set(changes) - {"admin_state_up", "description"}
    if bad:
        raise bad_request(f"Cannot update read-only attribute {sorted(bad)[0]}")
    admin = changes.get("admin_state_up")
    if admin is not None and not isinstance(admin, bool):
        raise bad_request(
            f"Invalid input for admin_state_up. Reason: '{admin}' is not a valid boolean value."
        )
    body = cloud.update_agent(
        p["agent_id"], admin_state_up=admin, description=changes.get("description")
    )
    return Response(200, {"agent": body})


@route("DELETE", "/v2.0/agents/{agent_id}")
def delete_agent(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.delete_agent(p["agent_id"])
    return Response(204)


# -- L3 agent scheduler ----------------------------------------------------------------------------------


@route("GET", "/v2.0/agents/{agent_id}/l3-routers")
def agent_routers(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.routers_on_agent(p["agent_id"]), req, "routers")


@route("POST", "/v2.0/agents/{agent_id}/l3-routers")
def add_router(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.add_router_to_agent(p["agent_id"], body_field(req.body, "router_id"))
    return Response(201, None)


@route("DELETE", "/v2.0/agents/{agent_id}/l3-routers/{router_id}")
def remove_router(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.remove_router_from_agent(p["agent_id"], p["router_id"])
    return Response(204)


@route("GET", "/v2.0/routers/{router_id}/l3-agents")
def router_agents(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.agents_hosting_router(p["router_id"]), req, "agents")


# -- DHCP agent scheduler ---------------------------------------------------------------------------------


@route("GET", "/v2.0/agents/{agent_id}/dhcp-networks")
def agent_networks(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.networks_on_agent(p["agent_id"]), req, "networks")


@route("POST", "/v2.0/agents/{agent_id}/dhcp-networks")
def add_network(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.add_network_to_agent(p["agent_id"], body_field(req.body, "network_id"))
    return Response(201, None)


@route("DELETE", "/v2.0/agents/{agent_id}/dhcp-networks/{network_id}")
def remove_network(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.remove_network_from_agent(p["agent_id"], p["network_id"])
    return Response(204)


@route("GET", "/v2.0/networks/{network_id}/dhcp-agents")
def network_agents(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.agents_hosting_network(p["network_id"]), req, "agents")


# -- routers ------------------------------------------------------------------------------------------------


def _str_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"Invalid input for {name}. Reason: '{value}' is not a list.")
    return [str(v) for v in value]


@route("GET", "/v2.0/routers")
def list_routers(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.routers(), req, "routers")


@route("POST", "/v2.0/routers")
def create_router(cloud: SimCloud, req: Request, p: P) -> Response:
    spec = body_member(req.body, "router")
    body = cloud.add_router(
        str(spec.get("name", "")),
        ha=bool(spec.get("ha", False)),
        distributed=bool(spec.get("distributed", False)),
        availability_zone_hints=_str_list(
            spec.get("availability_zone_hints", []), "availability_zone_hints"
        ),
        admin_state_up=bool(spec.get("admin_state_up", True)),
    )
    return Response(201, {"router": body})


@route("GET", "/v2.0/routers/{router_id}")
def show_router(cloud: SimCloud, req: Request, p: P) -> Response:
    return show(cloud.router(p["router_id"]), req, "router")


@route("PUT", "/v2.0/routers/{router_id}")
def update_router(cloud: SimCloud, req: Request, p: P) -> Response:
    return Response(
        200, {"router": cloud.update_router(p["router_id"], body_member(req.body, "router"))}
    )


@route("DELETE", "/v2.0/routers/{router_id}")
def delete_router(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.delete_router(p["router_id"])
    return Response(204)


# -- networks -----------------------------------------------------------------------------------------------


@route("GET", "/v2.0/networks")
def list_networks(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.networks(), req, "networks")


@route("POST", "/v2.0/networks")
def create_network(cloud: SimCloud, req: Request, p: P) -> Response:
    spec = body_member(req.body, "network")
    body = cloud.create_network(
        name=str(spec.get("name", "")),
        admin_state_up=bool(spec.get("admin_state_up", True)),
        availability_zone_hints=_str_list(
            spec.get("availability_zone_hints", []), "availability_zone_hints"
        ),
    )
    return Response(201, {"network": body})


@route("GET", "/v2.0/networks/{network_id}")
def show_network(cloud: SimCloud, req: Request, p: P) -> Response:
    return show(cloud.network(p["network_id"]), req, "network")


@route("PUT", "/v2.0/networks/{network_id}")
def update_network(cloud: SimCloud, req: Request, p: P) -> Response:
    changes = body_member(req.body, "network")
    return Response(200, {"network": cloud.update_network(p["network_id"], changes)})


@route("DELETE", "/v2.0/networks/{network_id}")
def delete_network(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.delete_network(p["network_id"])
    return Response(204)


# -- subnets ------------------------------------------------------------------------------------------------


@route("GET", "/v2.0/subnets")
def list_subnets(cloud: SimCloud, req: Request, p: P) -> Response:
    return listing(cloud.subnets(), req, "subnets")


@route("POST", "/v2.0/subnets")
def create_subnet(cloud: SimCloud, req: Request, p: P) -> Response:
    spec = body_member(req.body, "subnet")
    for key in ("network_id", "cidr"):
        if not isinstance(spec.get(key), str):
            raise bad_request(f"Invalid input for operation: '{key}' is required.")
    body = cloud.create_subnet(
        network_id=str(spec["network_id"]),
        cidr=str(spec["cidr"]),
        enable_dhcp=bool(spec.get("enable_dhcp", True)),
        name=str(spec.get("name", "")),
        ip_version=int(spec.get("ip_version", 4)),
    )
    return Response(201, {"subnet": body})


@route("GET", "/v2.0/subnets/{subnet_id}")
def show_subnet(cloud: SimCloud, req: Request, p: P) -> Response:
    return show(cloud.subnet(p["subnet_id"]), req, "subnet")


@route("PUT", "/v2.0/subnets/{subnet_id}")
def update_subnet(cloud: SimCloud, req: Request, p: P) -> Response:
    return Response(
        200, {"subnet": cloud.update_subnet(p["subnet_id"], body_member(req.body, "subnet"))}
    )


@route("DELETE", "/v2.0/subnets/{subnet_id}")
def delete_subnet(cloud: SimCloud, req: Request, p: P) -> Response:
    cloud.delete_subnet(p["subnet_id"])
    return Response(204)
