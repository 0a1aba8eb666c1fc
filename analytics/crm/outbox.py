"""The CRM outbox in Redis: nothing is lost while the CRM is down, nothing is pushed twice.

A hand-off is queued in the same transaction that moves a customer into a push stage
(`enqueue`, a Lua step that runs once per customer and stage ever: its marker lives outside
the derived keys, so a replay does not queue it again). `engage:crm:outbox` orders jobs by
when they are due; `engage:crm:job:<customer>:<stage>` holds attempts and the last error. The
sender claims a due job with a lease, pushes the customer's current record, and then
deletes it (sent), schedules it again with backoff (the CRM is down, slow or rate-limiting),
or moves it to `engage:crm:dead` with the reason (it will never be accepted as it is).
Each hand-off is written to the interaction log as `crm_pushed` or `crm_failed`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from redis.exceptions import RedisError

from analytics.crm.clients import CrmClient, Outcome, Result
from analytics.crm.config import CrmConfig
from analytics.schema import CRM_FAILED, CRM_PUSHED, EVENTS_STREAM, KEY_PREFIX, SOURCE_ANALYTICS, LogEvent

logger = logging.getLogger(__name__)

OUTBOX = KEY_PREFIX + "crm:outbox"
DEAD = KEY_PREFIX + "crm:dead"
JOB_PREFIX = KEY_PREFIX + "crm:job:"
QUEUED_PREFIX = KEY_PREFIX + "crm:queued:"
DEAD_MAX = 10_000

# KEYS: queued marker, job hash, outbox. ARGV: customer, stage, now.
ENQUEUE = """
if redis.call('SET', KEYS[1], ARGV[3], 'NX') then
  redis.call('HSET', KEYS[2], 'customer', ARGV[1], 'stage', ARGV[2], 'attempts', 0, 'queued_at', ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1] .. ':' .. ARGV[2])
  return 1
end
return 0
"""

# KEYS: outbox. ARGV: job, now, lease until. Take a due job for a while (another sender skips it).
_CLAIM = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
  return 1
end
return 0
"""


def job_key(job: str) -> str:
    return JOB_PREFIX + job


def queue_handoff(pipe: Any, customer: str, stage: str, now: float) -> None:
    """Inside the record's transaction: queue the hand-off of `customer` at `stage`, once ever."""
    job = f"{customer}:{stage}"
    pipe.eval(ENQUEUE, 3, QUEUED_PREFIX + job, job_key(job), OUTBOX, customer, stage, repr(now))


RecordReader = Callable[[str], Awaitable[Optional[Dict[str, Any]]]]


class CrmSender:
    """Pushes due hand-offs with the configured client; `read_record` gives a customer's current record."""

    def __init__(self, client: Any, crm: CrmClient, config: CrmConfig, read_record: RecordReader, batch: int = 20) -> None:
        self.client = client
        self.crm = crm
        self.config = config
        self.read_record = read_record
        self.batch = batch
        self._claim = client.register_script(_CLAIM)
        self.sent = 0

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    await self.step(session)
                except (RedisError, OSError) as exc:
                    logger.warning("CRM sender: Redis unavailable (%s); retrying", exc)
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except asyncio.TimeoutError:
                    pass

    async def step(self, session: aiohttp.ClientSession, now: Optional[float] = None) -> int:
        """Push every due job once; returns how many were tried."""
        now = time.time() if now is None else now
        due: List[str] = await self.client.zrangebyscore(OUTBOX, "-inf", now, start=0, num=self.batch)
        tried = 0
        for job in due:
            lease = now + self.config.retry.timeout + 5
            if not await self._claim(keys=[OUTBOX], args=[job, repr(now), repr(lease)]):
                continue  # another sender took it
            tried += 1
            await self._push(session, job, now)
        return tried

    async def _push(self, session: aiohttp.ClientSession, job: str, now: float) -> None:
        fields = await self.client.hgetall(job_key(job))
        customer = fields.get("customer", "")
        record = await self.read_record(customer)
        while record is not None and "merged_into" in record:
            record = await self.read_record(record["merged_into"])
        if record is None:
            outcome = Outcome(Result.FAILED, f"no record for {customer}")
        else:
            outcome = await self.crm.push(session, record, job)
        attempts = int(fields.get("attempts", 0)) + 1
        if outcome.result is Result.SENT:
            self.sent += 1
            await self._finish(job, customer, CRM_PUSHED, {"stage": fields.get("stage"), "attempts": attempts, "provider": self.config.provider})
            logger.info("CRM: %s handed to %s (attempt %d)", job, self.config.provider, attempts)
            return
        if outcome.result is Result.RETRY and attempts < self.config.retry.max_attempts:
            delay = self.config.retry.delay(attempts, outcome.retry_after)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(job_key(job), mapping={"attempts": attempts, "last_error": outcome.detail})
                pipe.zadd(OUTBOX, {job: now + delay}, xx=True)
                await pipe.execute()
            logger.warning("CRM: %s not accepted (%s); attempt %d, next in %.0fs", job, outcome.detail, attempts, delay)
            return
        reason = outcome.detail if outcome.result is Result.FAILED else f"gave up after {attempts} attempts: {outcome.detail}"
        await self._finish(job, customer, CRM_FAILED, {"stage": fields.get("stage"), "attempts": attempts, "reason": reason, "provider": self.config.provider}, dead=True)
        logger.error("CRM: %s dead-lettered: %s", job, reason)

    async def _finish(self, job: str, customer: str, kind: str, data: Dict[str, Any], dead: bool = False) -> None:
        record = LogEvent(type=kind, conversation_id=customer, source=SOURCE_ANALYTICS, data=data)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(OUTBOX, job)
            pipe.delete(job_key(job))
            if dead:
                pipe.lpush(DEAD, json.dumps({"job": job, **data}, sort_keys=True))
                pipe.ltrim(DEAD, 0, DEAD_MAX - 1)
            pipe.xadd(EVENTS_STREAM, record.to_fields())
            await pipe.execute()


async def outbox_status(client: Any) -> Dict[str, Any]:
    waiting = await client.zcard(OUTBOX)
    dead = [json.loads(item) for item in await client.lrange(DEAD, 0, 9)]
    return {"waiting": waiting, "dead_letters": await client.llen(DEAD), "latest_dead": dead}
