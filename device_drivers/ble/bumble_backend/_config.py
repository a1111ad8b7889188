"""Configuration of a bumble host (one per gateway)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from bumble import hci

__all__ = ["BumbleHostConfig", "resolve_address"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BumbleHostConfig:
    """Where the controller is and how the host presents itself.

    ``transport``: a bumble transport spec, e.g. ``tcp-client:127.0.0.1:9001``
    (the simulator) or ``usb:0`` (a dongle).
    ``address``: the host's static random address.  Bonds are keyed by it on
    both sides, so it must stay the same across restarts; when ``None`` it is
    taken from the keystore (the namespace of a previous run) or generated.
    ``keystore_path``: JSON file holding bonds (bumble ``JsonKeyStore``); when
    ``None`` bonds live in memory only.
    ``mtu``: ATT MTU requested on each connection.
    ``open_timeout``: seconds allowed to open the transport and power on.
    """

    transport: str
    address: str | None = None
    keystore_path: Path | None = None
    name: str = "vigie-gateway"
    mtu: int = 247
    open_timeout: float = 10.0


def resolve_address(config: BumbleHostConfig) -> hci.Address:
    """The host address: configured, else the keystore's namespace, else a new one."""
    if config.address is not None:
        return hci.Address(config.address, hci.Address.RANDOM_DEVICE_ADDRESS)
    stored = _address_from_keystore(config.keystore_path)
    if stored is not None:
        return stored
    address = hci.Address.generate_static_address()
    logger.debug("no host address configured: generated %s", address)
    return address


def _address_from_keystore(path: Path | None) -> hci.Address | None:
    """The single namespace of a JsonKeyStore file, when it is an address."""
    if path is None or not path.exists():
        return None
    try:
        namespaces = list(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        logger.warning("unreadable keystore %s: not reusing its address", path)
        return None
    if len(namespaces) != 1:
        return None
    try:
        return hci.Address(namespaces[0], hci.Address.RANDOM_DEVICE_ADDRESS)
    except ValueError:  # bumble's InvalidArgumentError is a ValueError
        return None
