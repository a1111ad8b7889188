"""Gateway errors, grouped by what the caller does next.

    GatewayError
    ├── ConfigError        fix the configuration file (usage)
    ├── OutboxFull         refuse the reading at the device side; retry later (nothing dropped)
    │   └── OutboxDiskFull     the same, because the disk under the outbox is full
    └── OutboxError        the outbox database itself failed (disk, corruption): stop loudly
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError):
    """The gateway configuration is invalid."""


class OutboxFull(GatewayError):
    """The outbox holds its maximum: the reading was not taken and must not be acknowledged."""

    def __init__(self, depth: int, capacity: int) -> None:
        super().__init__(f"outbox full ({depth}/{capacity} readings): reading refused")
        self.depth = depth
        self.capacity = capacity


class OutboxDiskFull(OutboxFull):
    """The disk (or the outbox's byte budget) is full: the reading was not taken."""

    def __init__(self, depth: int, detail: str) -> None:
        GatewayError.__init__(self, f"outbox disk full ({detail}) with {depth} readings "
                              "waiting: reading refused")
        self.depth = depth
        self.capacity = depth


class OutboxError(GatewayError):
    """The outbox database failed."""
