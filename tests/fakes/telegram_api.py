"""A fake Telegram Bot API on 127.0.0.1, plus the Update payloads Telegram posts to a webhook.

Follows https://core.telegram.org/bots/api: methods are called as POST /bot<token>/<method>
with a JSON body; every answer is {"ok": true, "result": ...} or
{"ok": false, "error_code": n, "description": "...", "parameters": {"retry_after": s}}.
Only what Engage's channel calls is served: sendMessage and answerCallbackQuery.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web

from tests.conftest import free_port

TOKEN = "123456789:AAEngageTestTokenForTheFakeBotApi00"
BOT = {"id": 123456789, "is_bot": True, "first_name": "Engage", "username": "engage_test_bot"}
TEXT_LIMIT = 4096  # "1-4096 characters after entities parsing" (counted in UTF-16 code units)
CALLBACK_DATA_BYTES = 64  # InlineKeyboardButton.callback_data: 1-64 bytes


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    method: str
    payload: Any
    status: int


@dataclass
class _Failure:
    status: int
    retry_after: Optional[int]
    header: bool


class BadRequest(Exception):
    pass


@dataclass
class FakeTelegramApi:
    """Serves /bot<token>/<method>; records every call; can be told to fail the next calls."""

    token: str = TOKEN
    calls: List[Call] = field(default_factory=list)
    _failures: List[_Failure] = field(default_factory=list)
    _runner: Optional[web.AppRunner] = None
    _message_ids: Any = field(default_factory=lambda: itertools.count(1000))
    base_url: str = ""

    async def start(self) -> "FakeTelegramApi":
        app = web.Application()
        app.router.add_post("/{bot}/{method}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeTelegramApi":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- test controls -------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 429, retry_after: Optional[int] = 1, header: bool = True) -> None:
        """Answer the next `count` calls with `status` (429: flood control, with `retry_after`
        in the body's parameters and, if `header`, a Retry-After header too)."""
        self._failures.extend(_Failure(status, retry_after if status == 429 else None, header) for _ in range(count))

    def succeeded(self, method: str) -> List[Dict[str, Any]]:
        """Payloads of the calls to `method` that were answered ok, in order."""
        return [call.payload for call in self.calls if call.method == method and call.status == 200]

    @property
    def messages(self) -> List[Dict[str, Any]]:
        return self.succeeded("sendMessage")

    def texts(self) -> List[str]:
        return [m["text"] for m in self.messages]

    # -- serving -------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.Response:
        bot, method = request.match_info["bot"], request.match_info["method"]
        try:
            payload = await request.json()
        except (ValueError, UnicodeDecodeError):
            payload = None
        if bot != f"bot{self.token}":
            self.calls.append(Call(method, payload, 401))
            return _error(401, "Unauthorized")
        if self._failures:
            failure = self._failures.pop(0)
            self.calls.append(Call(method, payload, failure.status))
            if failure.status == 429:
                headers = {"Retry-After": str(failure.retry_after)} if failure.header and failure.retry_after is not None else {}
                parameters = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
                return _error(429, f"Too Many Requests: retry after {failure.retry_after}", parameters, headers)
            return _error(failure.status, "Internal Server Error")
        handler = self._methods().get(method.lower())  # Bot API method names are case-insensitive
        if handler is None:
            self.calls.append(Call(method, payload, 404))
            return _error(404, "Not Found")
        try:
            if not isinstance(payload, dict):
                raise BadRequest("request body must be a JSON object")
            result = handler(payload)
        except BadRequest as exc:
            self.calls.append(Call(method, payload, 400))
            return _error(400, f"Bad Request: {exc}")
        self.calls.append(Call(method, payload, 200))
        return web.json_response({"ok": True, "result": result})

    def _methods(self) -> Dict[str, Callable[[Dict[str, Any]], Any]]:
        return {"sendmessage": self._send_message, "answercallbackquery": self._answer_callback_query}

    def _send_message(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        chat_id = payload.get("chat_id")
        if not isinstance(chat_id, (int, str)) or isinstance(chat_id, bool) or chat_id == "":
            raise BadRequest("chat_id is empty" if chat_id in (None, "") else "chat not found")
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("message text is empty")
        if utf16_length(text) > TEXT_LIMIT:
            raise BadRequest("message is too long")
        markup = payload.get("reply_markup")
        if markup is not None:
            _check_reply_markup(markup)
        message: Dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": dict(BOT),
            "chat": {"id": chat_id, "type": "private" if isinstance(chat_id, int) and chat_id > 0 else "group"},
            "date": int(time.time()),
            "text": text,
        }
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _answer_callback_query(self, payload: Dict[str, Any]) -> bool:
        query_id = payload.get("callback_query_id")
        if not isinstance(query_id, str) or not query_id:
            raise BadRequest("query is too old and response timeout expired or query ID is invalid")
        text = payload.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > 200):
            raise BadRequest("MESSAGE_TOO_LONG")
        return True


def _check_reply_markup(markup: Any) -> None:
    if not isinstance(markup, dict):
        raise BadRequest("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return  # other keyboards (ReplyKeyboardMarkup, ...) are not checked here
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise BadRequest("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict):
                raise BadRequest("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if not isinstance(button.get("text"), str) or not button["text"]:
                raise BadRequest("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            kinds = [k for k in ("url", "callback_data", "switch_inline_query", "switch_inline_query_current_chat", "web_app", "pay") if k in button]
            if len(kinds) != 1:
                raise BadRequest("can't parse inline keyboard button: exactly one of the optional fields must be used")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_BYTES:
                    raise BadRequest("BUTTON_DATA_INVALID")
            if "url" in button and not (isinstance(button["url"], str) and button["url"].startswith(("http://", "https://", "tg://"))):
                raise BadRequest("BUTTON_URL_INVALID")


def _error(status: int, description: str, parameters: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None) -> web.Response:
    body: Dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status, headers=headers)


# -- Update payloads, as Telegram posts them to the webhook -----------------------------------

_update_ids = itertools.count(int(time.time()) % 100_000 * 1000)
_message_ids = itertools.count(1)


def user(user_id: int, first_name: str = "Ada", username: Optional[str] = "ada_l") -> Dict[str, Any]:
    person: Dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
    if username is not None:
        person["username"] = username
    return person


def private_chat(user_id: int, first_name: str = "Ada", username: Optional[str] = "ada_l") -> Dict[str, Any]:
    chat: Dict[str, Any] = {"id": user_id, "first_name": first_name, "type": "private"}
    if username is not None:
        chat["username"] = username
    return chat


def _message(user_id: int, chat_id: Optional[int], username: Optional[str], **content: Any) -> Dict[str, Any]:
    chat = private_chat(user_id, username=username) if chat_id in (None, user_id) else {"id": chat_id, "title": "Quillstack users", "type": "supergroup"}
    return {"message_id": next(_message_ids), "from": user(user_id, username=username), "chat": chat, "date": int(time.time()), **content}


def _update(update_id: Optional[int], **kind: Any) -> Dict[str, Any]:
    return {"update_id": next(_update_ids) if update_id is None else update_id, **kind}


def text_update(user_id: int, text: str, *, chat_id: Optional[int] = None, update_id: Optional[int] = None, username: Optional[str] = "ada_l") -> Dict[str, Any]:
    return _update(update_id, message=_message(user_id, chat_id, username, text=text))


def photo_update(user_id: int, *, caption: Optional[str] = None, update_id: Optional[int] = None) -> Dict[str, Any]:
    sizes = [
        {"file_id": f"AgACAgQAAxkBAAI{size}", "file_unique_id": f"AQAD{size}", "width": size, "height": size * 3 // 4, "file_size": size * 40}
        for size in (90, 320, 800)
    ]
    content: Dict[str, Any] = {"photo": sizes}
    if caption is not None:
        content["caption"] = caption
    return _update(update_id, message=_message(user_id, None, "ada_l", **content))


def sticker_update(user_id: int, *, update_id: Optional[int] = None) -> Dict[str, Any]:
    sticker = {
        "file_id": "CAACAgIAAxkBAAIBb2Sticker", "file_unique_id": "AgADSticker", "type": "regular",
        "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "\U0001F44D", "file_size": 23000,
    }
    return _update(update_id, message=_message(user_id, None, "ada_l", sticker=sticker))


def voice_update(user_id: int, *, update_id: Optional[int] = None) -> Dict[str, Any]:
    voice = {"file_id": "AwACAgIAAxkBAAIBVoice", "file_unique_id": "AgADVoice", "duration": 3, "mime_type": "audio/ogg", "file_size": 9000}
    return _update(update_id, message=_message(user_id, None, "ada_l", voice=voice))


def edited_message_update(user_id: int, text: str, *, update_id: Optional[int] = None) -> Dict[str, Any]:
    message = _message(user_id, None, "ada_l", text=text)
    message["edit_date"] = message["date"] + 5
    return _update(update_id, edited_message=message)


def channel_post_update(channel_id: int, text: str, *, update_id: Optional[int] = None) -> Dict[str, Any]:
    post = {"message_id": next(_message_ids), "sender_chat": {"id": channel_id, "title": "Quillstack news", "type": "channel"},
            "chat": {"id": channel_id, "title": "Quillstack news", "type": "channel"}, "date": int(time.time()), "text": text}
    return _update(update_id, channel_post=post)


def callback_update(
    user_id: int, data: Optional[str], *, message: Optional[Dict[str, Any]] = None, query_id: Optional[str] = None, update_id: Optional[int] = None
) -> Dict[str, Any]:
    """A press of an inline keyboard button; `message` is the bot's message that carried it
    (a sendMessage result from the fake), else a minimal one in the user's private chat."""
    if message is None:
        message = {"message_id": next(_message_ids), "from": dict(BOT), "chat": private_chat(user_id), "date": int(time.time()), "text": "Pick one"}
    query: Dict[str, Any] = {
        "id": query_id or str(4_000_000_000_000_000 + next(_message_ids)),
        "from": user(user_id),
        "message": message,
        "chat_instance": "-7281947561094650001",
    }
    if data is not None:
        query["data"] = data
    return _update(update_id, callback_query=query)


def encode(update: Dict[str, Any]) -> bytes:
    return json.dumps(update).encode("utf-8")


async def wait_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
