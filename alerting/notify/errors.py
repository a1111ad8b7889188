"""Errors of the notification package (tree in the package docstring)."""

from __future__ import annotations

from alerting.settings import AlertingError, SettingsError


class NotifyError(AlertingError):
    """Root of the notification errors."""


class RoutingError(NotifyError, SettingsError):
    """The routing file is invalid (unknown channel, missing secret, bad address...)."""


class ChannelError(NotifyError):
    """A channel did not confirm a message (unreachable, refused, timed out): retry later.

    ``channel`` names the channel; ``permanent`` is True when retrying the same message cannot
    help (a 4xx answer other than 408/429): it is still retried, slowly, and logged as an error
    so an operator fixes the route, since dropping a page is worse than a late one."""

    def __init__(self, channel: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason
        self.permanent = permanent
