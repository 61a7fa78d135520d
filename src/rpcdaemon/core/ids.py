"""Typed identifiers and closed vocabularies shared by every layer."""

from __future__ import annotations

import enum
from typing import NewType

AgentId = NewType("AgentId", str)
RouterId = NewType("RouterId", str)
NetworkId = NewType("NetworkId", str)
SubnetId = NewType("SubnetId", str)
Host = NewType("Host", str)


class AgentType(str, enum.Enum):
    """Neutron's ``agent_type`` strings (neutron_lib.constants.AGENT_TYPE_*)."""

    L3 = "L3 agent"
    DHCP = "DHCP agent"
    OVS = "Open vSwitch agent"
    LINUXBRIDGE = "Linux bridge agent"
    METADATA = "Metadata agent"


class AgentMode(str, enum.Enum):
    """An L3 agent's ``configurations.agent_mode``."""

    LEGACY = "legacy"
    DVR_SNAT = "dvr_snat"
    DVR = "dvr"
    DVR_NO_EXTERNAL = "dvr_no_external"


class Liveness(str, enum.Enum):
    """Our verdict on an agent."""

    UNKNOWN = "unknown"
    ALIVE = "alive"
    DEAD = "dead"
