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
    BadHostId,
    BadHostSetup,
    DuplicateHostId,
    HostConnectionError,
    HostError,
    HostTimeoutError,
    MissingHostId,
    NoTargetHosts,
    UnroutableCommand,
    UnsafeCommand,
    UnsupportedHostSetting,
)
from .hosts import HostInfo
from .promise import Promise
from .redirects import ClusterRedirectError
from .rediscluster import RedisCluster, SlotRouter
from .router import BaseRouter, ConsistentHashingRouter, PartitionRouter
from .scripts import ClusterScript

__all__ = [
    "AMapManager",
    "AsyncFanoutClient",
    "AsyncLocalClient",
    "AsyncMappingClient",
    "AsyncRoutingClient",
    "BadHostId",
    "BadHostSetup",
    "BaseRouter",
    "ClusterRedirectError",
    "Cluster",
    "ClusterScript",
    "DuplicateHostId",
    "ConsistentHashingRouter",
    "FanoutClient",
    "HostConnectionError",
    "HostError",
    "HostInfo",
    "HostTimeoutError",
    "LocalClient",
    "MappingClient",
    "MissingHostId",
    "NoTargetHosts",
    "PartitionRouter",
    "Promise",
    "RedisCluster",
    "RoutingClient",
    "SlotRouter",
    "UnroutableCommand",
    "UnsafeCommand",
    "UnsupportedHostSetting",
]
