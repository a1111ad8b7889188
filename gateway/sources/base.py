"""The device-source interface every family (replay, simulator, BLE, serial) implements."""

from __future__ import annotations

import abc
import asyncio
from typing import Any, ClassVar

from gateway.intake import Intake


class Source(abc.ABC):
    """A long-lived producer of readings.

    ``run`` hands observations to ``intake.take`` and acknowledges its device only after
    ``take`` returned (the readings are then durable). When ``take`` raises ``OutboxFull`` the
    source must keep the reading on the device side (do not acknowledge, retry later).
    ``run`` returns when the source has nothing more to give (a finished replay file);
    long-lived sources run until cancelled.
    """

    kind: ClassVar[str]
    #: optional capabilities, declared rather than probed
    resumable: ClassVar[bool] = False  # keeps a durable cursor in the outbox

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options

    @abc.abstractmethod
    async def run(self, intake: Intake) -> None: ...

    async def refused_pause(self) -> None:
        """Wait before offering again what the full outbox refused."""
        await asyncio.sleep(float(self.options.get("retry_when_full_s", 1.0)))
