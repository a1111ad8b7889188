"""Cloud-side errors, grouped by what the caller does next.

    CloudError
    ├── StoreUnavailable   InfluxDB down or timing out: keep the message unacknowledged, retry
    ├── StoreRejected      InfluxDB refused the data or the query (400): isolate and quarantine
    └── ConfigError        bad settings: fix the call
"""

from __future__ import annotations


class CloudError(Exception):
    """Root of the cloud side's errors."""


class StoreUnavailable(CloudError):
    """The time-series store cannot be reached now; retrying later may succeed."""


class StoreRejected(CloudError):
    """The time-series store refused the request; retrying the same request will not help."""


class ConfigError(CloudError):
    """Settings are invalid."""
