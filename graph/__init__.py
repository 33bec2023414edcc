"""The Graph API client: plain Python on requests. Imports nothing of the project."""

from graph.client import (
    AssetRef,
    BatchItem,
    GraphClient,
    TokenGrant,
    TokenInfo,
    call_family,
    graph_id,
    is_marketing_path,
    parse_graph_datetime,
)
from graph.errors import (
    GraphError,
    InvalidTokenError,
    OtherGraphError,
    PermissionDeniedError,
    RateLimitError,
    TransientError,
    classify_error,
)
from graph.hooks import CallRecord, register_call_hook, unregister_call_hook
from graph.usage import Usage

__all__ = [
    "AssetRef",
    "BatchItem",
    "CallRecord",
    "GraphClient",
    "GraphError",
    "InvalidTokenError",
    "OtherGraphError",
    "PermissionDeniedError",
    "RateLimitError",
    "TokenGrant",
    "TokenInfo",
    "TransientError",
    "Usage",
    "call_family",
    "classify_error",
    "graph_id",
    "is_marketing_path",
    "parse_graph_datetime",
    "register_call_hook",
    "unregister_call_hook",
]
