"""The pause state as stored (JSON), shared by every pause store.

A stored value that cannot be decoded is an *unreadable pause*, not "not paused": somebody
stored it to pause (fail safe: an operator's ``rpcdaemon pause`` is never silently lost).
"""

from __future__ import annotations

import json
from typing import Any

from rpcdaemon.core.statusmodel import PauseState, unreadable_pause


def encode(state: PauseState) -> str:
    return json.dumps(
        {"until": state.until, "reason": state.reason, "by": state.by, "since": state.since}
    )


def decode(raw: str | bytes, *, where: str = "the pause state") -> PauseState:
    """The state; anything undecodable (bad UTF-8, not JSON, wrong types) is an
    :func:`~rpcdaemon.core.statusmodel.unreadable_pause`. Never raises."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data: Any = json.loads(text)
        until = data.get("until")
        return PauseState(
            until=None if until is None else float(until),
            reason=str(data.get("reason") or ""),
            by=str(data.get("by") or ""),
            since=float(data.get("since") or 0.0),
        )
    except Exception as exc:  # UnicodeDecodeError, ValueError, TypeError, AttributeError...
        return unreadable_pause(f"{where} is not a valid pause ({type(exc).__name__}: {exc})")
