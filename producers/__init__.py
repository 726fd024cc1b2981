"""Agent-side SDK: the event contract, ``AuditClient`` and the ``produce`` command.

``from auditstream.producers import AuditClient`` works; names resolve lazily so importing the
contract alone stays cheap.
"""

from __future__ import annotations

from typing import Any

_CLIENT_NAMES = (
    "AuditClient",
    "AuditClientError",
    "AgentSuspended",
    "BufferFull",
    "ClientClosed",
    "ClientStats",
    "DeliveryError",
    "FlushTimeout",
)
__all__ = list(_CLIENT_NAMES)


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from auditstream.producers import client

        return getattr(client, name)
    raise AttributeError(f"module 'auditstream.producers' has no attribute {name!r}")
