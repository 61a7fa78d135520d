"""The Neutron API through openstacksdk/keystoneauth1: a NeutronPort.

Reads (agents, routers, networks, subnets, bindings) are plain GETs on the SDK's network
proxy, read as JSON (following Neutron's ``*_links`` pagination): building an SDK resource
object per row was the main cost of a large snapshot. The four scheduling writes are sent as
plain requests on the same proxy, because the SDK's ``add_router_to_agent`` and friends
do not check the answer (the proxy's ``raise_exc`` is off, and those helpers neither call
``raise_from_response`` nor look at the status): a 409 would pass as success.

Error mapping (``rpcdaemon.core.errors``; the original exception is chained):

* 5xx, 408, 429, timeouts, connection errors, Keystone discovery failures: TemporaryError.
* 409: ConflictError (e.g. ``RouterHostedByL3Agent``: the router is on another agent).
* 404 ``InvalidL3Agent`` / ``InvalidDHCPAgent`` (wrong type, admin down, wrong agent_mode):
  PermanentError. Any other 404 (``AgentNotFound``, ``RouterNotFound``, ...): NotFoundError.
* other 4xx (401/403 included): PermanentError.

"Already done" answers are success, and they differ between L3 and DHCP (see
neutron-rig REPORT.md §3): L3 add twice is 201 and remove-unhosted is 204 anyway; DHCP
add twice is 409 ``NetworkHostedByDHCPAgent`` and remove-unhosted is 409
``NetworkNotHostedByDhcpAgent``. A remove whose agent, router or network no longer exists
(404 ``AgentNotFound`` / ``RouterNotFound`` / ``NetworkNotFound``) is success too: the
binding cannot exist.

No hidden retries: connect and status-code retries are 0; every call has ``timeout``
seconds (keystoneauth applies it to connect and to each read). The executor retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import openstack
from openstack import exceptions as os_exc

from rpcdaemon import __version__
from rpcdaemon.adapters.neutron_errors import ALREADY as _ALREADY
from rpcdaemon.adapters.neutron_errors import neutron_error_type, translate
from rpcdaemon.adapters.neutron_session import (
    session_connection,
    size_connection_pool,
    v3_auth_url,
)
from rpcdaemon.core.errors import (
    ConfigError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from rpcdaemon.core.ids import AgentId, AgentType, Host, NetworkId, RouterId
from rpcdaemon.core.view import (
    AgentInfo,
    ClusterView,
    Inventory,
    NetworkInfo,
    RouterInfo,
    share_bindings,
)
from rpcdaemon.settings import NeutronApiSettings

__all__ = ["ApiObserver", "NeutronAdapter", "connect", "ids_of", "v3_auth_url"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ApiObserver = Callable[[str, str, float], None]
"""Called after every API call with (op, status, seconds); status is the HTTP code as
text, or "timeout", "connection", "error"."""


class NeutronAdapter:
    """NeutronPort over an ``openstack.connection.Connection``."""

    def __init__(
        self,
        conn: Any,
        *,
        observer: ApiObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        concurrency: int = 4,
    ) -> None:
        self._conn = conn
        self._observer = observer
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._warned_hidden_fields = False

    # -- plumbing ---------------------------------------------------------------------

    @property
    def _net(self) -> Any:
        """The SDK's network proxy. The first access authenticates and discovers the
        endpoint, so it is only ever touched inside ``_read``/``_write``."""
        return self._conn.network

    def _observe(self, op: str, status: str, started: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(op, status, self._clock() - started)
        except Exception:
            logger.exception("API observer failed")

    def _read(self, op: str, fn: Callable[[], T]) -> T:
        started = self._clock()
        try:
            result = fn()
        except Exception as exc:
            err, status = translate(exc, op)
            self._observe(op, status, started)
            raise err from exc
        self._observe(op, "200", started)
        return result

    def _list(self, op: str, path: str, key: str) -> list[dict[str, Any]]:
        """GET a Neutron collection as plain JSON objects, following ``<key>_links``.

        Plain JSON, not SDK resources: building an SDK object per row costs about 2 ms,
        which made a snapshot of a few thousand bindings CPU-bound."""

        def fetch() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            url: str | None = path
            pages = 0
            while url is not None:
                resp = self._net.get(url, raise_exc=False, connect_retries=0)
                if resp.status_code >= 400:
                    os_exc.raise_from_response(resp)
                body = resp.json()
                items.extend(x for x in body.get(key) or () if isinstance(x, dict))
                links = body.get(f"{key}_links") or ()
                url = next((ln.get("href") for ln in links if ln.get("rel") == "next"), None)
                pages += 1
                if pages > 10_000:
                    raise PermanentError(f"{op}: more than 10000 pages; giving up")
            return items

        return self._read(op, fetch)

    def _write(self, op: str, method: str, url: str, body: dict[str, str] | None) -> None:
        started = self._clock()
        try:
            resp = self._net.request(url, method, json=body, raise_exc=False, connect_retries=0)
        except Exception as exc:
            err, status = translate(exc, op)
            self._observe(op, status, started)
            raise err from exc
        self._observe(op, str(resp.status_code), started)
        if resp.status_code < 400:
            return
        kind = neutron_error_type(resp)
        if (resp.status_code, kind) in _ALREADY[op]:
            logger.info("%s %s: already done (%s %s)", method, url, resp.status_code, kind)
            return
        try:
            os_exc.raise_from_response(resp)
        except os_exc.HttpException as exc:
            err, _ = translate(exc, op)
            if op == "add_router" and isinstance(err, TemporaryError):
                logger.warning(
                    "%s %s answered %s: Neutron may have saved the binding anyway "
                    "(its agent notification failed); retrying the add is safe",
                    method,
                    url,
                    resp.status_code,
                )
            raise err from exc
        raise PermanentError(f"{op}: unexpected HTTP {resp.status_code}")  # pragma: no cover

    # -- NeutronPort ------------------------------------------------------------------

    def snapshot(self, *, routers: bool = True, networks: bool = True) -> ClusterView:
        taken_at = self._clock()
        inventory = self.inventory(routers=routers, networks=networks)
        agents = inventory.agents
        l3 = [a for a in agents.values() if a.agent_type == AgentType.L3.value]
        dhcp = [a for a in agents.values() if a.agent_type == AgentType.DHCP.value]
        router_bindings: dict[RouterId, frozenset[AgentId]] = {}
        network_bindings: dict[NetworkId, frozenset[AgentId]] = {}
        if routers:
            hosted = self._per_agent(
                "list_agent_routers",
                l3,
                lambda a: ids_of(
                    self._list("list_agent_routers", f"/agents/{a}/l3-routers", "routers")
                ),
            )
            router_bindings = _invert(inventory.routers, hosted, RouterId)
        if networks:
            hosted = self._per_agent(
                "list_agent_networks",
                dhcp,
                lambda a: ids_of(
                    self._list("list_agent_networks", f"/agents/{a}/dhcp-networks", "networks")
                ),
            )
            network_bindings = _invert(inventory.networks, hosted, NetworkId)
        return ClusterView(
            agents=agents,
            routers=inventory.routers,
            networks=inventory.networks,
            router_bindings=router_bindings,
            network_bindings=network_bindings,
            taken_at=taken_at,
        )

    def inventory(self, *, routers: bool = True, networks: bool = True) -> Inventory:
        """Agents, routers and networks without the bindings: a constant number of calls
        (1 to 4), whatever the size of the cloud. The reactor's cheap resync."""
        agents = {
            AgentId(str(a["id"])): self._agent_info(a)
            for a in self._list("list_agents", "/agents", "agents")
        }
        router_infos: dict[RouterId, RouterInfo] = {}
        network_infos: dict[NetworkId, NetworkInfo] = {}
        if routers:
            router_infos = {
                RouterId(str(r["id"])): self._router_info(r)
                for r in self._list("list_routers", "/routers", "routers")
            }
        if networks:
            listed = self._list("list_networks", "/networks", "networks")
            subnets = self._list(
                "list_subnets", "/subnets?fields=network_id&fields=enable_dhcp", "subnets"
            )
            with_dhcp = {s.get("network_id") for s in subnets if s.get("enable_dhcp")}
            network_infos = {
                NetworkId(str(n["id"])): NetworkInfo(
                    id=NetworkId(str(n["id"])),
                    dhcp_enabled=n["id"] in with_dhcp,
                    availability_zone_hints=tuple(n.get("availability_zone_hints") or ()),
                    name=str(n.get("name") or ""),
                )
                for n in listed
            }
        return Inventory(agents=agents, routers=router_infos, networks=network_infos)

    def get_agent(self, agent_id: AgentId) -> AgentInfo | None:
        try:
            agent = self._read("get_agent", lambda: self._get_one(f"/agents/{agent_id}", "agent"))
        except NotFoundError:
            return None
        return self._agent_info(agent)

    def router_agents(self, router_id: RouterId) -> frozenset[AgentId]:
        agents = self._list("router_agents", f"/routers/{router_id}/l3-agents", "agents")
        return frozenset(AgentId(i) for i in ids_of(agents))

    def network_agents(self, network_id: NetworkId) -> frozenset[AgentId]:
        agents = self._list("network_agents", f"/networks/{network_id}/dhcp-agents", "agents")
        return frozenset(AgentId(i) for i in ids_of(agents))

    def _get_one(self, path: str, key: str) -> dict[str, Any]:
        resp = self._net.get(path, raise_exc=False, connect_retries=0)
        if resp.status_code >= 400:
            os_exc.raise_from_response(resp)
        body = resp.json().get(key)
        if not isinstance(body, dict):
            raise PermanentError(f"GET {path}: no {key!r} object in the answer")
        return body

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        self._write(
            "add_router", "POST", f"/agents/{agent_id}/l3-routers", {"router_id": router_id}
        )

    def remove_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        self._write("remove_router", "DELETE", f"/agents/{agent_id}/l3-routers/{router_id}", None)

    def add_network(self, agent_id: AgentId, network_id: NetworkId) -> None:
        body: dict[str, str] = {"network_id": network_id}
        self._write("add_network", "POST", f"/agents/{agent_id}/dhcp-networks", body)

    def remove_network(self, agent_id: AgentId, network_id: NetworkId) -> None:
        url = f"/agents/{agent_id}/dhcp-networks/{network_id}"
        self._write("remove_network", "DELETE", url, None)

    # -- helpers ----------------------------------------------------------------------

    def _per_agent(
        self, op: str, agents: list[AgentInfo], fn: Callable[[AgentId], list[str]]
    ) -> dict[AgentId, list[str]]:
        """One listing per agent (the O(agents) part), a few at a time. ``fn`` reads through
        :meth:`_list`, which observes each call once (``op`` names the listing in logs)."""

        def one(agent: AgentInfo) -> tuple[AgentId, list[str]]:
            try:
                return agent.id, fn(agent.id)
            except NotFoundError:
                return agent.id, []  # deleted since the agent list: it hosts nothing

        if self._concurrency == 1 or len(agents) < 2:
            return dict(one(a) for a in agents)
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            return dict(pool.map(one, agents))

    def _agent_info(self, a: dict[str, Any]) -> AgentInfo:
        conf = a.get("configurations")
        conf = dict(conf) if isinstance(conf, dict) else {}
        agent_type = str(a.get("agent_type") or "")
        mode = conf.get("agent_mode") if agent_type == AgentType.L3.value else None
        return AgentInfo(
            id=AgentId(str(a["id"])),
            agent_type=agent_type,
            host=Host(str(a.get("host") or "")),
            admin_state_up=a.get("admin_state_up") is not False,
            alive=a.get("alive") is True,
            availability_zone=a.get("availability_zone") or None,
            agent_mode=str(mode) if mode else None,
            started_at=a.get("started_at"),
            heartbeat_timestamp=a.get("heartbeat_timestamp"),
            configurations=conf,
        )

    def _router_info(self, r: dict[str, Any]) -> RouterInfo:
        if ("ha" not in r or "distributed" not in r) and not self._warned_hidden_fields:
            self._warned_hidden_fields = True
            logger.warning(
                "routers come without 'ha'/'distributed' (policy hides them from this user): "
                "they are treated as legacy; run rpcdaemon with admin credentials"
            )
        return RouterInfo(
            id=RouterId(str(r["id"])),
            ha=r.get("ha") is True,
            distributed=r.get("distributed") is True,
            availability_zone_hints=tuple(r.get("availability_zone_hints") or ()),
            admin_state_up=r.get("admin_state_up") is not False,
            name=str(r.get("name") or ""),
        )


def ids_of(items: Iterable[dict[str, Any]]) -> list[str]:
    return [str(x["id"]) for x in items if x.get("id")]


def _invert(
    known: Iterable[T], hosted: dict[AgentId, list[str]], make: Callable[[str], T]
) -> dict[T, frozenset[AgentId]]:
    """resource -> agents hosting it, for every known resource (unhosted: empty set).
    Resources created after the resource listing are left for the next snapshot."""
    out: dict[T, set[AgentId]] = {r: set() for r in known}
    for agent_id, ids in hosted.items():
        for rid in ids:
            key = make(rid)
            if key in out:
                out[key].add(agent_id)
    return share_bindings(out)  # one frozenset per distinct set of agents (memory)


# -- connecting ---------------------------------------------------------------------------


def connect(
    api: NeutronApiSettings,
    *,
    concurrency: int = 8,
    observer: ApiObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> NeutronAdapter:
    """The one NeutronAdapter of the daemon, from the daemon-level settings: the
    clouds.yaml cloud ``api.cloud`` when set, else ``api.auth`` (neutron.conf
    ``[keystone_authtoken]`` or the 2014 ``admin_user`` set; Keystone v3, Default domains).
    Every call has ``api.timeout`` seconds. Authentication is lazy: the first call
    authenticates, and its errors are mapped like any other. ``concurrency`` sizes the
    connection pool and the per-agent listings of a snapshot."""
    common: dict[str, Any] = {
        "connect_retries": 0,
        "status_code_retries": 0,
    }
    try:
        if api.cloud:
            conn = openstack.connect(
                cloud=api.cloud,
                api_timeout=api.timeout,
                app_name="rpcdaemon",
                app_version=__version__,
                **common,
            )
        elif api.auth is not None:
            conn = session_connection(api.auth, api.timeout, common)
        else:
            raise ConfigError(
                "no credentials for the Neutron API: set cloud = NAME (clouds.yaml) "
                "or point conffile at a neutron.conf with [keystone_authtoken]",
                option="cloud",
            )
    except os_exc.ConfigException as exc:
        raise ConfigError(f"cloud {api.cloud!r}: {exc}", option="cloud") from exc
    logger.info("Neutron API credentials from %s, timeout %gs", api.source or "?", api.timeout)
    size_connection_pool(conn, concurrency)
    return NeutronAdapter(conn, observer=observer, clock=clock, concurrency=concurrency)
