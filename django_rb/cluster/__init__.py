"""The cluster core: rb's public API over redis-py, without threads. No Django in here."""

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
from .redirects import ClusterRedirectError
from .rediscluster import RedisCluster, SlotRouter
from .router import BaseRouter, ConsistentHashingRouter, PartitionRouter

__all__ = [
    "BadHostSetup",
    "BaseRouter",
    "ClusterRedirectError",
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
    "RedisCluster",
    "RoutingClient",
    "SlotRouter",
    "UnroutableCommand",
]
