"""Chat with the running assistant in the terminal (`make shell`), through the REST channel.

Buttons are numbered: type the number to press one. /quit or Ctrl-D leaves.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List


def send(url: str, sender: str, text: str, timeout: float = 30) -> List[Dict[str, Any]]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"[]")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        return [{"text": f"[{exc.code}] {detail}"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    port = os.environ.get("ENGAGE_RASA_PORT", "5005")
    parser.add_argument("--url", default=f"http://127.0.0.1:{port}/webhooks/rest/webhook")
    parser.add_argument("--sender", default=f"shell-{uuid.uuid4().hex[:8]}")
    args = parser.parse_args()
    print(f"Chatting as {args.sender} with {args.url}. Type /quit to leave.")
    buttons: List[Dict[str, Any]] = []
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text in ("/quit", "/exit"):
            return
        if not text:
            continue
        if text.isdigit() and 1 <= int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        try:
            replies = send(args.url, args.sender, text)
        except (urllib.error.URLError, OSError) as exc:
            print(f"(the assistant is not reachable at {args.url}: {exc}; is `make run` running?)", file=sys.stderr)
            continue
        buttons = []
        for reply in replies:
            if reply.get("text"):
                print(f"bot> {reply['text']}")
            for button in reply.get("buttons") or []:
                buttons.append(button)
                print(f"     [{len(buttons)}] {button.get('title')}")
            if reply.get("image"):
                print(f"     (image: {reply['image']})")


if __name__ == "__main__":
    main()
