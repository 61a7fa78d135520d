"""The project's exception vocabulary. Adapters translate library errors into these."""

from __future__ import annotations


class RpcdaemonError(Exception):
    """Root of every error rpcdaemon raises on purpose."""


class ConfigError(RpcdaemonError):
    """A configuration problem, reported as one line naming file, section and option."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        section: str | None = None,
        option: str | None = None,
    ) -> None:
        self.path = path
        self.section = section
        self.option = option
        self.message = message
        where = ": ".join(
            part
            for part in (
                path,
                f"[{section}]" if section else None,
                option,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class TemporaryError(RpcdaemonError):
    """Worth retrying (5xx, timeout, connection loss). ``delay`` is a hint in seconds."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(RpcdaemonError):
    """Retrying the same call will not help (4xx other than the idempotent ones)."""


class NotFoundError(PermanentError):
    """The agent, router or network no longer exists."""


class ConflictError(PermanentError):
    """Neutron refused because of the current state (409): re-plan from fresh state."""
