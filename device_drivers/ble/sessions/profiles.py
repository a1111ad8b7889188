"""Which GATT characteristics each health profile is read through.

One ``ProfileSpec`` per supported device family; the session code only ever asks the spec
(capabilities are declared here, not probed per call site).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CLOCK_CHARACTERISTICS",
    "GLUCOSE_CONTEXT",
    "GLUCOSE_MEASUREMENT",
    "HEALTH_SERVICES",
    "PROFILES",
    "RACP",
    "Profile",
    "ProfileSpec",
    "profile_of",
    "sig_uuid",
]


def sig_uuid(number: int) -> str:
    """A 16-bit assigned number on the Bluetooth Base UUID, as bleak spells it."""
    return f"0000{number:04x}-0000-1000-8000-00805f9b34fb"


class Profile(StrEnum):
    GLUCOMETER = "glucometer"
    SCALE = "scale"
    BP = "bp"
    OXIMETER = "oximeter"
    THERMOMETER = "thermometer"


GLUCOSE_MEASUREMENT: Final = sig_uuid(0x2A18)
GLUCOSE_CONTEXT: Final = sig_uuid(0x2A34)
RACP: Final = sig_uuid(0x2A52)
# Read once per connection to measure the device clock: Current Time (CTS 0x2A2B, Exact Time
# 256 starts with a Date Time) or a plain readable Date Time (0x2A08).
CLOCK_CHARACTERISTICS: Final = (sig_uuid(0x2A2B), sig_uuid(0x2A08))


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What a session subscribes to for one profile.

    ``measurements``: notified/indicated characteristics that must exist; ``optional``: ones
    subscribed when present (Glucose Context); ``records``: the device keeps a record memory
    behind a RACP (GLS 3.9), read with "records >= last + 1"; ``bond``: the profile needs an
    encrypted link (RACP writes require it, GLS 1.0 section 5.1.1).
    """

    profile: Profile
    service: str
    measurements: tuple[str, ...]
    optional: tuple[str, ...] = ()
    records: bool = False
    bond: bool = False


PROFILES: Final[Mapping[Profile, ProfileSpec]] = {
    Profile.GLUCOMETER: ProfileSpec(Profile.GLUCOMETER, sig_uuid(0x1808),
                                    (GLUCOSE_MEASUREMENT,), (GLUCOSE_CONTEXT,),
                                    records=True, bond=True),
    Profile.SCALE: ProfileSpec(Profile.SCALE, sig_uuid(0x181D), (sig_uuid(0x2A9D),)),
    # Intermediate Cuff Pressure (0x2A36) is not patient data: not subscribed.
    Profile.BP: ProfileSpec(Profile.BP, sig_uuid(0x1810), (sig_uuid(0x2A35),)),
    # Spot-check only: PLX Continuous (0x2A5F) would stream and keep the link busy forever.
    Profile.OXIMETER: ProfileSpec(Profile.OXIMETER, sig_uuid(0x1822), (sig_uuid(0x2A5E),)),
    Profile.THERMOMETER: ProfileSpec(Profile.THERMOMETER, sig_uuid(0x1809), (sig_uuid(0x2A1C),)),
}

HEALTH_SERVICES: Final = tuple(spec.service for spec in PROFILES.values())


def profile_of(service_uuids: Iterable[str]) -> Profile | None:
    """The profile whose service a device advertises, if any."""
    advertised = {u.lower() for u in service_uuids}
    for spec in PROFILES.values():
        if spec.service in advertised:
            return spec.profile
    return None
