"""The cluster core: rb's public API over redis-py, without threads. No Django in here."""

from .aclients import (
    AMapManager,
    AsyncFanoutClient,
    AsyncLocalClient,
    AsyncMappingClient,
    AsyncRoutingClient,
)
from .clients import FanoutClient, LocalClient, MappingClient, RoutingClient
from .cluster import Cluster
from .errors import (
    BadHostSetup,
    HostConnectionError,
    HostError,
    HostTimeoutError,
    UnroutableCommand,
)
from .hosts import HostInfo
from .promise import Promise
from .router import BaseRouter, ConsistentHashingRouter, PartitionRouter

__all__ = [
    "AMapManager",
    "AsyncFanoutClient",
    "AsyncLocalClient",
    "AsyncMappingClient",
    "AsyncRoutingClient",
    "BadHostSetup",
    "BaseRouter",
    "Cluster",
    "ConsistentHashingRouter",
    "FanoutClient",
    "HostConnectionError",
    "HostError",
    "HostInfo",
    "HostTimeoutError",
    "LocalClient",
    "MappingClient",
    "PartitionRouter",
    "Promise",
    "RoutingClient",
    "UnroutableCommand",
]
