"""CRM hand-off settings from YAML (analytics/crm/config.yml) and secrets from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from analytics.funnel.rules import STAGES
from analytics.yaml_rules import read_text, read_yaml

DEFAULT_CONFIG = Path(__file__).with_name("config.yml")
PROVIDERS = ("none", "hubspot", "salesforce", "webhook")


class CrmConfigError(ValueError):
    """The CRM settings or their environment variables are unusable; the message says what to fix."""


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 8
    first_delay: float = 2.0
    max_delay: float = 600.0
    timeout: float = 10.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True)
class CrmConfig:
    provider: str
    push_stages: Tuple[str, ...]
    retry: Retry
    base_url: str = ""
    token: str = ""
    api_version: str = ""
    external_id_field: str = ""
    secret: str = ""

    @property
    def enabled(self) -> bool:
        return self.provider != "none"


def load_crm_config(path: Optional[Path] = None, environ: Mapping[str, str] = os.environ) -> CrmConfig:
    path = Path(path or DEFAULT_CONFIG)
    return parse_crm_config(read_text(path, "CRM settings", CrmConfigError), str(path), environ)


def parse_crm_config(text: str, source: str, environ: Mapping[str, str]) -> CrmConfig:
    doc = read_yaml(text, source, CrmConfigError)
    data = doc.data if isinstance(doc.data, dict) else {}
    problems: List[str] = []
    provider = str(data.get("provider", "none"))
    if provider not in PROVIDERS:
        problems.append(f"{doc.line(doc.node('provider'))}: provider must be one of {', '.join(PROVIDERS)} (got {provider!r})")
    stages = data.get("push_stages") or []
    if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
        problems.append(f"{doc.line(doc.node('push_stages'))}: push_stages must list funnel stages ({', '.join(STAGES)})")
        stages = []
    raw_retry: Dict[str, Any] = data.get("retry") if isinstance(data.get("retry"), dict) else {}
    numbers = {}
    for key, default in (("max_attempts", 8), ("first_delay_seconds", 2), ("max_delay_seconds", 600), ("timeout_seconds", 10)):
        value = raw_retry.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            problems.append(f"{doc.line(doc.node('retry', key) or doc.node('retry'))}: retry.{key} must be a positive number")
            value = default
        numbers[key] = value
    retry = Retry(int(numbers["max_attempts"]), float(numbers["first_delay_seconds"]), float(numbers["max_delay_seconds"]), float(numbers["timeout_seconds"]))
    settings: Dict[str, Any] = data.get(provider) if isinstance(data.get(provider), dict) else {}

    def secret(key: str) -> str:
        name = settings.get(key)
        value = environ.get(str(name), "") if name else ""
        if not value:
            problems.append(f"{doc.line(doc.node(provider, key) or doc.node(provider) or doc.node('provider'))}: "
                            f"provider {provider} needs the environment variable {name or provider + '.' + key} (set it in .env)")
        return value

    config = CrmConfig(provider if provider in PROVIDERS else "none", tuple(stages), retry)
    if provider == "hubspot":
        config = CrmConfig(provider, tuple(stages), retry, base_url=str(settings.get("base_url", "https://api.hubapi.com")), token=secret("token_env"))
    elif provider == "salesforce":
        config = CrmConfig(
            provider, tuple(stages), retry, base_url=secret("base_url_env"), token=secret("token_env"),
            api_version=str(settings.get("api_version", "v60.0")), external_id_field=str(settings.get("external_id_field", "Engage_Customer_Id__c")),
        )
    elif provider == "webhook":
        config = CrmConfig(provider, tuple(stages), retry, base_url=secret("url_env"), secret=secret("secret_env"))
    if problems:
        raise CrmConfigError("the CRM settings have mistakes:\n  " + "\n  ".join(problems))
    return config
