"""Short references a customer can quote for what they submitted (IDEA-7F3A2C, PRB-..., LEAD-...)."""

from __future__ import annotations

import uuid


def reference(prefix: str) -> str:
    """PREFIX- and six random upper-case hex digits. Short enough to read out; not unique by
    construction (16.7 million values), so the log record's event_id stays the real key."""
    return f"{prefix}-{uuid.uuid4().hex[:6].upper()}"
