"""Shared async Kubernetes client library for every minik8s component.

    from client import APIClient, load_config, SharedInformerFactory, WorkQueue, run_workers

    async with APIClient(load_config(path, qps=50, burst=100)) as api:
        pods = api.resource("v1", "pods")
        pod = await pods.get("web-0", "default")

Modules: config (ClientConfig), rest (APIClient), resource (ResourceClient), errors
(ApiError + is_*), informer (Informer, SharedInformerFactory), store (Store), workqueue,
leaderelection (LeaderElector), events (EventRecorder).
"""

from client.backoff import Backoff
from client.config import (
    ClientConfig,
    FileToken,
    StaticToken,
    from_kubeconfig,
    in_cluster_config,
    load_config,
)
from client.discovery import ResourceInfo
from client.errors import (
    APIConnectionError,
    ApiError,
    is_already_exists,
    is_bad_request,
    is_conflict,
    is_forbidden,
    is_gone,
    is_invalid,
    is_not_found,
    is_server_timeout,
    is_too_many_requests,
    is_unauthorized,
)
from client.events import NORMAL, WARNING, EventRecorder
from client.informer import HandlerRegistration, Informer, SharedInformerFactory
from client.leaderelection import LeaderElector
from client.ratelimit import TokenBucket
from client.resource import ResourceClient, create_missing
from client.rest import APIClient
from client.store import (
    DeletedFinalStateUnknown,
    Store,
    deleted_object,
    index_by_namespace,
    index_by_node_name,
    index_by_owner_uid,
)
from client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)

__all__ = [
    "NORMAL",
    "WARNING",
    "APIClient",
    "APIConnectionError",
    "ApiError",
    "Backoff",
    "BucketRateLimiter",
    "ClientConfig",
    "DeletedFinalStateUnknown",
    "EventRecorder",
    "FileToken",
    "HandlerRegistration",
    "Informer",
    "ItemExponentialFailureRateLimiter",
    "LeaderElector",
    "MaxOfRateLimiter",
    "ResourceClient",
    "ResourceInfo",
    "SharedInformerFactory",
    "StaticToken",
    "Store",
    "TokenBucket",
    "WorkQueue",
    "create_missing",
    "default_controller_rate_limiter",
    "deleted_object",
    "from_kubeconfig",
    "in_cluster_config",
    "index_by_namespace",
    "index_by_node_name",
    "index_by_owner_uid",
    "is_already_exists",
    "is_bad_request",
    "is_conflict",
    "is_forbidden",
    "is_gone",
    "is_invalid",
    "is_not_found",
    "is_server_timeout",
    "is_too_many_requests",
    "is_unauthorized",
    "load_config",
    "run_workers",
]
