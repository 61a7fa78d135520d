"""The pause state as stored (JSON), shared by every pause store."""

from __future__ import annotations

import json
import logging
from typing import Any

from rpcdaemon.core.statusmodel import PauseState

logger = logging.getLogger(__name__)


def encode(state: PauseState) -> str:
    return json.dumps(
        {"until": state.until, "reason": state.reason, "by": state.by, "since": state.since}
    )


def decode(text: str | bytes) -> PauseState | None:
    """The state, or None (logged) for anything unreadable: garbage never pauses anyone."""
    try:
        data: Any = json.loads(text)
        until = data.get("until")
        return PauseState(
            until=None if until is None else float(until),
            reason=str(data.get("reason") or ""),
            by=str(data.get("by") or ""),
            since=float(data.get("since") or 0.0),
        )
    except (ValueError, TypeError, AttributeError):
        logger.warning("ignoring an unreadable pause state: %.80r", text)
        return None
