"""Neutron's REST surface over a :class:`SimCloud`: routing, filters, ``fields``, pagination.

``dispatch`` is pure request -> response (no sockets); api.py feeds it from HTTP.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from rpcdaemon.sim.cloud import SimCloud, SimNeutronError

SPECIAL_QUERY = frozenset({"fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"})

EXTENSIONS = (
    ("agent", "agent", "The agent management extension."),
    ("l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents"),
    ("dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding"),
    ("l3-ha", "HA Router extension", "Adds HA capability to routers."),
    ("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    (
        "router_availability_zone",
        "Router Availability Zone",
        "Availability zone support for router.",
    ),
    (
        "network_availability_zone",
        "Network Availability Zone",
        "Availability zone support for network.",
    ),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
)


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: Any = None  # JSON-able; None with 201 renders "null", with 204 nothing
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    base_url: str


Handler = Callable[[SimCloud, Request, Mapping[str, str]], Response]
_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?$")

    def register(fn: Handler) -> Handler:
        _ROUTES.append((method, pattern, template, fn))
        return fn

    return register


def match(method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
    """(endpoint template, handler, path params). Unknown path: ("<unknown>", None, {})."""
    allowed = False
    for m, pattern, template, fn in _ROUTES:
        found = pattern.match(path)
        if found:
            if m == method:
                return template, fn, found.groupdict()
            allowed = True
    return ("<method-not-allowed>" if allowed else "<unknown>"), None, {}


def dispatch(cloud: SimCloud, request: Request) -> tuple[str, Response]:
    template, handler, params = match(request.method, request.path)
    if handler is None:
        if template == "<method-not-allowed>":
            return template, error(405, "HTTPMethodNotAllowed", "The method is not allowed.")
        return template, error(404, "HTTPNotFound", "The resource could not be found.")
    try:
        return template, handler(cloud, request, params)
    except SimNeutronError as exc:
        return template, Response(exc.status, exc.body())


def error(status: int, type_: str, message: str) -> Response:
    return Response(status, SimNeutronError(status, type_, message).body())


def bad_request(message: str) -> SimNeutronError:
    return SimNeutronError(400, "HTTPBadRequest", message)


# -- lists: filters, fields, pagination ------------------------------------------------------------


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any(
            w.strip().lower() in (("true", "1") if value else ("false", "0")) for w in wanted
        )
    if value is None:
        return any(w in ("", "None") for w in wanted)
    return str(value) in wanted


def listing(
    items: list[dict[str, Any]], request: Request, collection: str, *, post_filter: str = ""
) -> Response:
    """Neutron's list: filters, then a page (sorted by id when paginated), then ``fields``.

    ``post_filter`` names a filter Neutron applies after the page was read (``alive`` for
    agents, in ``AgentDbMixin.get_agents``), so such a page may hold fewer than ``limit`` items.
    """
    query = request.query
    known = set().union(*(item.keys() for item in items)) if items else set()
    late: list[str] | None = None
    for key, wanted in query.items():
        if key in SPECIAL_QUERY:
            continue
        if key == post_filter:
            late = wanted
            continue
        if items and key not in known:
            raise bad_request(f"[{key}] is invalid attribute for filtering")
        items = [item for item in items if _matches(item.get(key), wanted)]
    links: list[dict[str, str]] = []
    limit_s = (query.get("limit") or [""])[-1]
    marker = (query.get("marker") or [""])[-1]
    if limit_s or marker:
        items = sorted(items, key=lambda item: str(item.get("id", "")))
        reverse = (query.get("page_reverse") or ["false"])[-1].lower() == "true"
        try:
            limit = int(limit_s) if limit_s else 0
        except ValueError as exc:
            raise bad_request(f"Invalid input for limit: '{limit_s}' is not an integer") from exc
        if limit < 0:
            raise bad_request(f"Limit must be an integer 0 or greater and not '{limit}'")
        ids = [str(item.get("id")) for item in items]
        if marker and marker not in ids:
            raise SimNeutronError(404, "HTTPNotFound", f"Marker {marker} could not be found.")
        if reverse:
            end = ids.index(marker) if marker else len(items)
            start = max(0, end - limit) if limit else 0
        else:
            start = ids.index(marker) + 1 if marker else 0
            end = start + limit if limit else len(items)
        page = items[start:end]
        if limit and page:
            base = f"{request.base_url}{request.path}"
            keep = [
                (k, v) for k, vs in query.items() if k not in ("marker", "page_reverse") for v in vs
            ]
            if len(page) == limit and (end < len(items) if not reverse else True):
                nxt = keep + [("marker", str(page[-1]["id"]))]
                links.append({"rel": "next", "href": f"{base}?{urllib.parse.urlencode(nxt)}"})
            if marker:
                prev = keep + [("marker", str(page[0]["id"])), ("page_reverse", "True")]
                links.append({"rel": "previous", "href": f"{base}?{urllib.parse.urlencode(prev)}"})
        items = page
    if late is not None:
        items = [item for item in items if _matches(item.get(post_filter), late)]
    fields = query.get("fields")
    if fields:
        items = [{k: v for k, v in item.items() if k in fields} for item in items]
    body: dict[str, Any] = {collection: items}
    if links:
        body[f"{collection}_links"] = links
    return Response(200, body)


def show(item: dict[str, Any], request: Request, key: str, status: int = 200) -> Response:
    fields = request.query.get("fields")
    if fields:
        item = {k: v for k, v in item.items() if k in fields}
    return Response(status, {key: item})


def body_member(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise bad_request(f"Resource body required with key '{key}'")
    return dict(body[key])


def body_field(body: Any, key: str) -> str:
    if not isinstance(body, dict) or not isinstance(body.get(key), str):
        raise bad_request(f"Invalid input: '{key}' is missing from the request body")
    return str(body[key])


# -- versions and extensions ---------------------------------------------------------------------------


@route("GET", "/")
def _versions(cloud: SimCloud, req: Request, p: Mapping[str, str]) -> Response:
    link = {"href": f"{req.base_url}/v2.0/", "rel": "self"}
    return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [link]}]})


@route("GET", "/v2.0")
def _v2(cloud: SimCloud, req: Request, p: Mapping[str, str]) -> Response:
    names = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("router", "routers"),
        ("agent", "agents"),
    ]
    resources = [
        {
            "name": n,
            "collection": c,
            "links": [{"href": f"{req.base_url}/v2.0/{c}", "rel": "self"}],
        }
        for n, c in names
    ]
    return Response(200, {"resources": resources})


@route("GET", "/v2.0/extensions")
def _extensions(cloud: SimCloud, req: Request, p: Mapping[str, str]) -> Response:
    exts = [
        {
            "alias": a,
            "name": n,
            "description": d,
            "updated": "2013-02-03T10:00:00-00:00",
            "links": [],
        }
        for a, n, d in EXTENSIONS
    ]
    return Response(200, {"extensions": exts})


@route("GET", "/v2.0/extensions/{alias}")
def _extension(cloud: SimCloud, req: Request, p: Mapping[str, str]) -> Response:
    for a, n, d in EXTENSIONS:
        if a == p["alias"]:
            ext = {"alias": a, "name": n, "description": d, "updated": "2013-02-03T10:00:00-00:00"}
            return Response(200, {"extension": {**ext, "links": []}})
    return error(404, "HTTPNotFound", f"Extension with alias {p['alias']} does not exist")
