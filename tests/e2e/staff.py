"""Members of staff on the running stack's console: created through the command staff use, and
signed in on the console's HTTP API (what the pages' scripts do)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Dict

import requests

from scripts.stack import VENVS, Stack

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "e2e staff password 42"


def add_staff(stack: Stack, login: str, role: str, name: str) -> None:
    """python -m console users add, against the stack's Redis."""
    result = subprocess.run(
        [str(VENVS / "actions" / "bin" / "python"), "-m", "console", "users", "add", login, "--name", name, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**stack.env(), "REDIS_URL": stack.effective_redis_url},
    )
    assert result.returncode == 0 and f"added {login}" in result.stdout, result.stderr


class StaffSession:
    """A signed-in member of staff: session cookie and CSRF token. `answer` is the page signing in led to."""

    def __init__(self, stack: Stack, login: str) -> None:
        self.base = stack.console_url
        self.http = requests.Session()
        page = self.http.get(f"{self.base}/login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        self.answer = self.http.post(f"{self.base}/login", data={"login": login, "password": PASSWORD, "csrf_token": token}, timeout=30)
        assert self.answer.status_code == 200, self.answer.text[:300]
        self.csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', self.answer.text).group(1)

    def post(self, path: str, body: Dict[str, Any]) -> requests.Response:
        return self.http.post(f"{self.base}{path}", json=body, headers={"X-CSRF-Token": self.csrf}, timeout=90)
