"""The handover console: queue, conversation (packet, transcript, reply, notes), claim, transfer,
resolve, hand back, canned answers, presence; and the live feed (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any, Dict, List, Optional

import aiohttp_jinja2
from aiohttp import web
from aiohttp_sse import sse_response

from analytics.proactive import Author, Outcome
from analytics.schema import EVENTS_STREAM
from console.app import CONFIG, FAQ, HANDOVERS, PRESENCE, PROACTIVE, RECORDS, REDIS, USERS
from console.errors import Refused
from console.web import json_object
from console.handover import packet as packets
from console.handover.store import OUTCOMES, Handover
from console.security import USER, csrf_token, requires
from console.users import StaffUser

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4096
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
CSAT_QUESTION = "One last thing: how happy are you with the help you got today? (1 = not at all, 5 = very)"
CSAT_BUTTONS = [{"title": f"{score}", "payload": f'/rate_csat{{"csat_score":"{score}"}}'} for score in range(1, 6)]
BACK_TO_BOT = "You're back with the Quillstack assistant now; ask me anything, or ask for a person again at any time."
HANDLERS = ("agent", "sales")


def _teams(user: StaffUser, request: web.Request) -> List[str]:
    configured = list(request.app[CONFIG].teams)
    return configured if "*" in user.teams else [t for t in user.teams if t in configured] or list(user.teams)


def _text(body: Dict[str, Any], key: str, limit: int, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Refused(400, f"empty_{key}", f"Write the {what} first.")
    if len(value) > limit:
        raise Refused(400, f"{key}_too_long", f"The {what} is {len(value)} characters; at most {limit} fit. Split it in two.")
    return value.strip()


async def _visible(request: web.Request, conversation_id: str) -> Handover:
    """The handover, if this user may see it: they own it, work its team, or are an admin."""
    user: StaffUser = request[USER]
    handover = await request.app[HANDOVERS].get(conversation_id)
    if handover is None:
        raise Refused(404, "no_handover", "This conversation is not waiting for or owned by anyone (it may have been resolved). Back to the queue.")
    if handover.owner != user.login and not user.works(handover.team):
        raise Refused(403, "wrong_team", f"This conversation belongs to the {handover.team} team, which you do not work.")
    return handover


def _owned(user: StaffUser, handover: Handover) -> None:
    if handover.owner != user.login and user.role != "admin":
        who = handover.owner or "no one"
        raise Refused(403, "not_owner", f"Only the agent who owns this conversation can do that (now: {who}). Claim it from the queue first.")


async def _queue_state(request: web.Request) -> Dict[str, Any]:
    user: StaffUser = request[USER]
    now = time.time()
    teams = _teams(user, request)
    waiting = await request.app[HANDOVERS].waiting(teams)
    mine = await request.app[HANDOVERS].owned(user.login)
    config = request.app[CONFIG]
    return {
        "teams": [{"id": team, "name": config.team(team).name, "waiting": [h.as_json(now) for h in waiting if h.team == team]} for team in teams],
        "mine": [h.as_json(now) for h in mine],
        "limit": config.max_concurrent,
        "now": now,
    }


@requires(*HANDLERS)
async def queue_page(request: web.Request) -> web.StreamResponse:
    user = request[USER]
    await request.app[PRESENCE].heartbeat(user.login)
    state = await _queue_state(request)
    status = (await request.app[PRESENCE].status([user.login]))[user.login]
    return aiohttp_jinja2.render_template("queue.html", request, {"user": user, "csrf": await csrf_token(request), "state": state,
                                                                  "presence": status, "triggers": TRIGGER_NAMES})


TRIGGER_NAMES = {"asked_for_person": "asked for a person", "misses": "bot missed twice", "negative_feedback": "unhappy (feedback)",
                 "sales_ready": "sales-ready lead"}


@requires(*HANDLERS)
async def queue_api(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _queue_state(request))


@requires(*HANDLERS)
async def claim(request: web.Request) -> web.StreamResponse:
    user: StaffUser = request[USER]
    body = await json_object(request)
    conversation_id, team = body.get("conversation_id"), body.get("team")
    if not isinstance(conversation_id, str) or not isinstance(team, str):
        raise Refused(400, "bad_claim", "Send the conversation_id and team of the conversation to take.")
    config = request.app[CONFIG]
    store = request.app[HANDOVERS]
    handover = await store.claim(user, conversation_id, team, config.max_concurrent)
    intro = f"Hi, this is {user.name} from {config.team(team).name}. I've read our conversation so far and I'm here to help."
    outcome = await request.app[PROACTIVE].send(conversation_id, intro, author=Author("agent", user.login, user.name),
                                                control="pause", message_id=f"claim-{uuid.uuid4().hex}")
    if outcome.http_status not in (200, 502):
        # The bot could not be paused: the conversation goes back where it was, and the agent is told why.
        await store.unclaim(user, conversation_id, outcome.reason)
        raise Refused(502, "pause_failed", f"Could not take over from the bot: {outcome.reason} The conversation is back in the queue.")
    return web.json_response({"claimed": handover.as_json(time.time()), "intro": _outcome(outcome)})


def _outcome(outcome: Outcome) -> Dict[str, Any]:
    return {"status": outcome.status, "channel": outcome.channel, "reason": outcome.reason}


@requires(*HANDLERS)
async def conversation_page(request: web.Request) -> web.StreamResponse:
    user: StaffUser = request[USER]
    conversation_id = request.match_info["conversation_id"]
    handover = await _visible(request, conversation_id)
    # The log's position before the transcript is read: the live feed starts there, so a line
    # written while the page renders is shown (at worst twice), never lost.
    latest = await request.app[REDIS].xrevrange(EVENTS_STREAM, count=1)
    since = latest[0][0] if latest else "0-0"
    found = await packets.build(request.app[REDIS], request.app[RECORDS], conversation_id, handover.reason)
    config = request.app[CONFIG]
    staff = await request.app[USERS].list()
    colleagues = [u for u in staff if u.login != user.login and u.handles_conversations]
    presence = await request.app[PRESENCE].status([u.login for u in colleagues])
    names = {u.login: u.name for u in staff}
    owner_name = "you" if handover.owner == user.login else names.get(handover.owner or "", handover.owner)  # a removed user: the login
    return aiohttp_jinja2.render_template("conversation.html", request, {
        "user": user, "csrf": await csrf_token(request), "handover": handover, "packet": found, "owner": handover.owner == user.login,
        "owner_name": owner_name,
        "notes": await request.app[HANDOVERS].notes(conversation_id), "outcomes": OUTCOMES, "teams": list(config.teams),
        "colleagues": [(u, presence.get(u.login, "away")) for u in colleagues], "triggers": TRIGGER_NAMES,
        "transcript_json": json.dumps([line.as_json() for line in found.transcript]), "since": since,
    })


@requires(*HANDLERS)
async def reply(request: web.Request) -> web.StreamResponse:
    user: StaffUser = request[USER]
    conversation_id = request.match_info["conversation_id"]
    body = await json_object(request)
    text = _text(body, "text", MAX_REPLY_CHARS, "reply")
    handover = await _visible(request, conversation_id)
    _owned(user, handover)
    message_id = body.get("message_id") if isinstance(body.get("message_id"), str) and len(body["message_id"]) <= 64 else uuid.uuid4().hex
    outcome = await request.app[PROACTIVE].send(conversation_id, text, author=Author("agent", user.login, user.name), message_id=f"reply-{message_id}")
    if not outcome.ok:
        raise Refused(502, "not_delivered", f"Not delivered: {outcome.reason or 'the channel refused it'}. The customer did not get it; try again or reach them another way.")
    return web.json_response(_outcome(outcome))


@requires(*HANDLERS)
async def add_note(request: web.Request) -> web.StreamResponse:
    conversation_id = request.match_info["conversation_id"]
    body = await json_object(request)
    await _visible(request, conversation_id)
    text = body.get("text") if isinstance(body.get("text"), str) else ""
    note = await request.app[HANDOVERS].add_note(request[USER], conversation_id, text)
    return web.json_response(note)


@requires(*HANDLERS)
async def transfer(request: web.Request) -> web.StreamResponse:
    user: StaffUser = request[USER]
    conversation_id = request.match_info["conversation_id"]
    body = await json_object(request)
    handover = await _visible(request, conversation_id)
    _owned(user, handover)
    store, config = request.app[HANDOVERS], request.app[CONFIG]
    if isinstance(body.get("to_team"), str) and body["to_team"]:
        if body["to_team"] not in config.teams:
            raise Refused(400, "unknown_team", f"There is no team '{body['to_team']}'. Teams: {', '.join(config.teams)}.")
        await store.transfer_to_team(user, conversation_id, body["to_team"], handover.owner)
        return web.json_response({"transferred": "team", "team": body["to_team"]})
    target = await request.app[USERS].get(str(body.get("to_agent", "")))
    if target is None or not target.handles_conversations:
        raise Refused(400, "unknown_agent", "Choose a colleague who takes conversations, or a team's queue.")
    if not target.works(handover.team):
        raise Refused(400, "wrong_team", f"{target.name} does not work the {handover.team} queue; transfer to their team instead.")
    await store.transfer_to_agent(user, conversation_id, target, handover.owner, config.max_concurrent)
    return web.json_response({"transferred": "agent", "to": target.login})


@requires(*HANDLERS)
async def resolve(request: web.Request) -> web.StreamResponse:
    return await _finish(request, resolved=True)


@requires(*HANDLERS)
async def handback(request: web.Request) -> web.StreamResponse:
    return await _finish(request, resolved=False)


async def _finish(request: web.Request, resolved: bool) -> web.StreamResponse:
    user: StaffUser = request[USER]
    conversation_id = request.match_info["conversation_id"]
    body = await json_object(request)
    outcome_name: Optional[str] = None
    if resolved:
        outcome_name = body.get("outcome") if body.get("outcome") in OUTCOMES else None
        if outcome_name is None:
            raise Refused(400, "bad_outcome", f"Choose an outcome: {', '.join(OUTCOMES)}.")
    handover = await _visible(request, conversation_id)
    _owned(user, handover)
    proactive = request.app[PROACTIVE]
    author = Author("agent", user.login, user.name)
    # The bot resumes first: if Rasa cannot be reached, the agent keeps the conversation (and is told).
    resumed = await proactive.send(conversation_id, BACK_TO_BOT, author=author, control="resume", message_id=f"resume-{uuid.uuid4().hex}")
    if resumed.http_status not in (200, 502):
        raise Refused(502, "resume_failed", f"Could not hand back to the bot: {resumed.reason} You still own the conversation.")
    await request.app[HANDOVERS].finish(user, conversation_id, handover.owner, outcome_name)
    answer: Dict[str, Any] = {"resumed": _outcome(resumed)}
    if resolved:
        csat = await proactive.send(conversation_id, CSAT_QUESTION, author=Author("system", "csat", "Quillstack"),
                                    buttons=CSAT_BUTTONS, message_id=f"csat-{uuid.uuid4().hex}")
        answer["csat"] = _outcome(csat)
    return web.json_response(answer)


@requires(*HANDLERS)
async def canned(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()
    if not query:
        return web.json_response({"answers": []})
    if len(query) > 300:
        raise Refused(400, "query_too_long", "Search with a few words (at most 300 characters).")
    from knowledge_base.errors import KnowledgeBaseError

    try:
        knowledge_base = await request.app[FAQ].get()
        hits = await asyncio.get_running_loop().run_in_executor(None, knowledge_base.search, query, 5)
    except KnowledgeBaseError as exc:
        raise Refused(503, "faq_unavailable", f"The FAQ search is not available ({exc}). Type the answer yourself for now.")
    return web.json_response({"answers": [{"id": hit.entry.id, "question": hit.entry.question, "answer": hit.entry.answer,
                                           "url": hit.entry.url or "", "score": round(float(hit.score), 3)} for hit in hits]})


@requires(*HANDLERS)
async def presence(request: web.Request) -> web.StreamResponse:
    body = await json_object(request)
    status = body.get("status")
    if status not in ("online", "away", "heartbeat"):
        raise Refused(400, "bad_status", "status is online, away or heartbeat.")
    login = request[USER].login
    if status == "heartbeat":
        await request.app[PRESENCE].heartbeat(login)
    else:
        await request.app[PRESENCE].set_away(login, status == "away")
    return web.json_response({"status": (await request.app[PRESENCE].status([login]))[login]})


@requires(*HANDLERS)
async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `queue` (the queue state, whenever it may have changed) and, with
    ?conversation=<id>, `line` (each new customer, bot or agent line) and `state` (owner changes)."""
    conversation_id = request.query.get("conversation")
    if conversation_id:
        await _visible(request, conversation_id)
    client = request.app[REDIS]
    user: StaffUser = request[USER]
    # Where to read from: after a reconnect the browser names the last line it got (Last-Event-ID),
    # on the first connect the page names the log's position when it was rendered.
    since = request.headers.get("Last-Event-ID") or request.query.get("since", "")
    last_id = since if conversation_id and STREAM_ID.match(since) else "$"
    previous = ""
    async with sse_response(request) as stream:
        while stream.is_connected():
            state = await _queue_state(request)
            snapshot = json.dumps({k: v for k, v in state.items() if k != "now"}, sort_keys=True, default=str)
            if snapshot != previous:  # waiting times tick in the browser; only changes are sent
                previous = snapshot
                await stream.send(json.dumps(state), event="queue")
            await request.app[PRESENCE].heartbeat(user.login)
            # Blocks below the client's 5 s socket timeout, so a quiet log is not mistaken for a dead Redis.
            entries = await client.xread({EVENTS_STREAM: last_id}, count=200, block=3000)
            for _, items in entries or ():
                for entry_id, fields in items:
                    last_id = entry_id
                    if conversation_id and fields.get("conversation_id") == conversation_id:
                        line = _line(fields)
                        if line is not None:
                            await stream.send(json.dumps(line), event="line", id=entry_id)
                        if fields.get("type", "").startswith("handover_"):
                            await stream.send(fields["type"], event="state")
    return stream


def _line(fields: Dict[str, str]) -> Optional[Dict[str, Any]]:
    kind = fields.get("type")
    if kind not in ("user", "bot", "reply_undelivered", "staff_note"):
        return None
    metadata = json.loads(fields.get("metadata") or "{}")
    author = metadata.get("author") or {}
    who = {"user": "customer", "staff_note": "note", "reply_undelivered": "undelivered"}.get(kind) or (
        "agent" if author.get("role") == "agent" else ("system" if author else "bot"))
    data = json.loads(fields.get("data") or "{}")
    return {"at": float(fields.get("timestamp") or 0), "who": who, "text": fields.get("text", ""), "channel": fields.get("channel", ""),
            "author": author.get("name", ""), "reason": data.get("error", ""), "buttons": [b.get("title", "") for b in data.get("buttons") or [] if isinstance(b, dict)]}
