"""Reading a connector's entry in credentials.yml: known options, types, and every missing secret named."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

from connectors.errors import ConnectorConfigError


@dataclass
class Options:
    """A connector's options, checked against what it accepts."""

    owner: str  # the dotted path in credentials.yml, for messages
    values: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(
        cls,
        owner: str,
        credentials: Optional[Mapping[str, Any]],
        accepted: Mapping[str, type],
        required: Sequence[str] = (),
        env_hint: Optional[Mapping[str, str]] = None,
    ) -> "Options":
        """Check `credentials`: unknown keys, wrong types and *all* missing required keys in one error.

        `env_hint` maps a required key to the environment variable that usually fills it
        (`${VAR}` in credentials.yml), so the message says what to set.
        """
        if credentials is not None and not isinstance(credentials, Mapping):
            raise ConnectorConfigError(f"{owner}: expected a mapping of options, got {type(credentials).__name__}")
        credentials = dict(credentials or {})
        unknown = sorted(set(credentials) - set(accepted))
        if unknown:
            raise ConnectorConfigError(f"{owner}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(accepted))}")
        missing = [key for key in required if credentials.get(key) in (None, "")]
        if missing:
            hints = env_hint or {}
            named = ", ".join(f"{key} (set {hints[key]})" if key in hints else key for key in missing)
            raise ConnectorConfigError(f"{owner}: missing {named}; secrets come from the environment, see .env.example")
        values: Dict[str, Any] = {}
        for key, value in credentials.items():
            if value is None:
                continue
            kind = accepted[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)  # a numeric secret read from YAML
            if kind is object:  # checked by the option's own reader
                pass
            elif not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ConnectorConfigError(f"{owner}: '{key}' must be {kind.__name__}, got {value!r}")
            values[key] = value
        return cls(owner, values)

    def positive(self, *keys: str) -> None:
        """Each of `keys` that is set must be above zero."""
        for key in keys:
            value = self.values.get(key)
            if value is not None and value <= 0:
                raise ConnectorConfigError(f"{self.owner}: '{key}' must be positive, got {value!r}")
