"""The score agent: batch envelopes in, RocksDB state through the pure core, health changes out.

One Faust agent (concurrency 1, it writes a table) reads the by-account topic. Each
message is either a batch envelope of one account's events or a clock tick for one
partition. For message ``m`` at offset ``o`` of partition ``p`` the agent:

1. advances ``p``'s event-time clock (newest event or tick time; in live mode never
   behind the wall clock, in replay mode only from the messages);
2. re-evaluates the accounts whose due-index entry is at or before the clock, with
   ``events=[]`` (that is how "power user inactive 21 days" fires on the right day when
   an account sends nothing): a key-ordered range scan of ``p``'s RocksDB, so the cost
   grows with what is due;
3. applies an envelope: loads the account record and the touched users once, calls
   ``scoring.engine.step``, writes each touched key once;
4. writes the partition clock last, applies the message's writes, then sends every
   decision to the health-changes topic keyed by account.

Exactly-once effects from at-least-once delivery (see docs/guarantees.md): the account
record stores the offset last applied and is written before the user records, carrying
them; a redelivered offset is never applied again, its user records and health changes
are re-written and re-sent from the record instead. A message's writes are applied
together (the changelog records in order, to changelog partition ``p``, then, once the
broker has them, one RocksDB write batch: see ``state.keyed.TableState``), so the
local RocksDB is never ahead of the changelog and survives a ``kill -9``.

Each workspace is scored under its own scoring config when it has a file in
``settings.workspaces_dir`` (``agents/workspaces.py``), else under the shared one; the
config is taken once per message (:meth:`ScoreProcessor.config_for`), so a file changed
while the worker runs applies from the next message on, and its version is in every
health change scored under it. The state records hold no config, only what happened:
a new config reads the same records and judges them by its own rules.

A leader-only timer sends a tick into every partition every ``settings.tick_interval``
seconds (live mode only). Tests and backfills send ticks with an explicit ``now`` to move
event time deterministically. The topic is internal but validated as if anyone could write
to it: one forged tick far in the future would make every account of its partition look
inactive. So a tick moves the clock at most to :meth:`ScoreProcessor.tick_limit` (live: the
wall clock plus :data:`TICK_SKEW_SECONDS`; replay: the partition's newest event
time plus ``settings.replay_tick_max_ahead_seconds``); one past it is clamped there,
counted and dead-lettered with reason ``tick_out_of_bounds``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust

from agents.app import finish_even_if_cancelled
from scoring.driver import AccountKey, Driver, Loaded
from scoring.engine import StepResult
from state import tables
from state.aggregates import AccountState, UserState, encode_within
from state.faust_adapter import (
    committed_offsets,
    restore_before_recovery,
    run_before_first_start,
)
from state.keyed import TableState
from state.restore import restore
from state.tables import AccountRecord, PartitionClock
from streams.cloudevents import headers_of_encoded_change
from streams.dlq import DEAD_LETTERS, DeadLetter
from streams.envelope import (
    ENVELOPES,
    FUTURE_TOLERANCE_SECONDS,
    TICK_SKEW_SECONDS,
    Envelope,
    EnvelopeError,
    Tick,
    kafka_key,
)
from streams.events import Event
from streams.health_change import HEALTH_CHANGES
from streams.settings import Settings

if TYPE_CHECKING:
    from faust.types import CollectionT

    from agents.workspaces import Workspaces
    from scoring.config import ScoringConfig

log = logging.getLogger(__name__)

AGENT = "score"
#: Outbox and clock entries kept at most, whatever the committed offset says.
MAX_RECENT_OFFSETS = 32


#: Most dead letters one message's skipped events and traits produce.
MAX_SKIPPED_REPORTED = 20


def change_key(workspace: str, account_id: str) -> bytes:
    """Message key of an account's health changes: the account's by-account key, so one
    account's changes stay in one partition, in order."""
    return kafka_key(workspace, account_id)


@dataclass(slots=True)
class _Message:
    """The message being processed: where and when, and what its steps leave behind."""

    partition: int
    offset: int
    #: The envelope's account, when it is stepped with its events, and its keys.
    arrival: AccountKey | None = None
    arrival_keys: tables.AccountKeys | None = None
    #: Records of the due accounts to step, read once by the due scan.
    records: dict[AccountKey, AccountRecord] = field(default_factory=dict)
    #: Due accounts re-evaluated with effects (changes or user writes), for the clock.
    touched: list[AccountKey] = field(default_factory=list)
    #: Due-index keys to delete after the clock is written.
    stale: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Loaded(Loaded):
    """An account before its step, with its record as it was (None: a new account) and its
    state keys, for :meth:`ScoreProcessor.save`."""

    record: AccountRecord | None
    keys: tables.AccountKeys


class ScoreProcessor:
    """The agent's work for one message, over the state table and the output topic.

    Kept apart from the Faust decorators so the whole path of a message reads top to
    bottom in :meth:`process`; Faust only supplies (partition, offset, value).
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        config: ScoringConfig,
        table: CollectionT,
        changes_topic: faust.TopicT,
        workspaces: Workspaces | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.config = config
        self.workspaces = workspaces
        # The scoring config of each workspace for the message being processed: taken
        # once per message, so a configuration change lands between two messages and
        # never in the middle of one (its writes and changes all come from one config).
        self._configs: dict[str, ScoringConfig] = {}
        self.changes_topic_name: str = changes_topic.get_topic_name()
        # The table, one message at a time: reads see the message's own writes and the
        # partition's flushes not yet acknowledged by the changelog (hence not yet in
        # RocksDB) over RocksDB; the due index is a range of its keys.
        self.state = TableState(table, settings.topics.by_account, indexed=(tables.DUE,))
        self._outgoing: list[tuple[bytes, bytes]] = []
        self._dead_letters: list[DeadLetter] = []
        # Earliest due second per partition (None: nothing due): saves the range scan on
        # messages that cannot find anything due. Memory only, and trusted only while
        # this processor saw every message of the partition: ``_hint_offset`` is the
        # last offset it processed there, checked against the partition clock.
        self._first_due: dict[int, int | None] = {}
        self._first_due_known: set[int] = set()
        self._hint_offset: dict[int, int] = {}
        self._metrics: Any = _metrics()
        # The core runs through the one driver every shell shares; this processor is its
        # store of accounts and its due index, over the table.
        self._driver = Driver(self, self, self.config_for)
        self._message = _Message(-1, -1)

    # ----------------------------------------------------------------- one message

    async def process(self, partition: int, offset: int, raw: bytes | None) -> None:
        """Handle one by-account message; its writes land together (see TableState)."""
        self.state.begin(partition)
        last = self._load_clock(partition).offset
        if last >= 0 and offset > last + 1:
            await self._fill_gap(partition, last + 1, offset)
        await self._process_one(partition, offset, raw)

    async def _fill_gap(self, partition: int, start: int, end: int) -> None:
        """Process offsets ``start``..``end - 1`` of ``partition``, read straight from Kafka.

        The by-account topic has contiguous offsets (not compacted, no transactions),
        but right after a rebalance Faust can skip a few buffered messages and later
        commit past them as a "gap". The partition clock knows the last offset applied,
        so such a hole is seen here and filled before the message that revealed it.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        log.warning("score: p%d offsets %d-%d were not delivered; reading them directly",
                    partition, start, end - 1)
        tp = TopicPartition(self.settings.topics.by_account, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    group_id=None, enable_auto_commit=False,
                                    **self.settings.kafka_security.aiokafka_options())
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            position = start
            deadline = time.monotonic() + 60
            while position < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read p{partition} {position}-{end - 1}")
                batches = await consumer.getmany(tp, timeout_ms=1000,
                                                 max_records=end - position)
                for record in batches.get(tp, []):
                    if record.offset >= end:
                        break
                    await self._process_one(partition, record.offset, record.value)
                    position = record.offset + 1
        finally:
            await consumer.stop()

    async def _process_one(self, partition: int, offset: int, raw: bytes | None) -> None:
        self.state.begin(partition)
        self._outgoing = []
        self._dead_letters = []
        self._configs = {}
        self._process(partition, offset, raw)
        if not await self.state.flush():
            log.info("score: p%d was revoked while processing offset %d; its new owner "
                     "processes it again", partition, offset)
            return
        producer = self.app.producer
        for key, change in self._outgoing:
            await producer.send(self.changes_topic_name, key, change, None, None,
                                headers_of_encoded_change(change))
        for dead in self._dead_letters:
            await producer.send(self.settings.topics.events_dlq, DEAD_LETTERS.key(dead),
                                DEAD_LETTERS.encode(dead), None, None, None)

    def _process(self, partition: int, offset: int, raw: bytes | None) -> None:
        try:
            message = ENVELOPES.decode(raw)
        except EnvelopeError as exc:
            log.warning("score: skipping p%d@%d: %s", partition, offset, exc)
            self._count_dead_letter(exc.reason)
            return
        if isinstance(message, Tick) and message.partition != partition:
            # A tick only speaks for the partition it names; one that landed elsewhere
            # was misrouted and must not move this partition's clock.
            self._count_dead_letter("misrouted_tick")
            return
        clock = self._load_clock(partition)
        if self._hint_offset.get(partition) != clock.offset:
            # Another worker (or a crash) moved this partition on: the hint is stale.
            self._first_due_known.discard(partition)
        self._hint_offset[partition] = offset
        if offset <= clock.offset:
            self._redeliver_partition(offset, clock, message)
            return
        if isinstance(message, Tick):
            limit = self.tick_limit(clock.newest_event)
            if message.now > limit:
                self._dead_letter("tick_out_of_bounds",
                                  f"tick at {message.now:.3f} is past {limit:.3f}, the latest "
                                  f"time a tick may move partition {partition}'s clock to",
                                  raw=raw)
                message = Tick(limit, message.partition)
        now = self._advance(clock.now, message)
        newest_event = clock.newest_event
        self._message = _Message(partition, offset)
        arrivals: dict[AccountKey, list[Event]] = {}
        if isinstance(message, Envelope):
            newest_event = max(newest_event,
                               max((e.timestamp for e in message.events), default=0.0))
            arrivals = self._arrivals(message)
        self._driver.advance(now, arrivals)
        committed = self._committed(partition)
        recent = [(o, accs) for o, accs in clock.recent if o >= committed]
        if self._message.touched:
            recent.append((offset, self._message.touched))
        new_clock = PartitionClock(now, offset, recent[-MAX_RECENT_OFFSETS:], newest_event)
        self.state.put(tables.clock_key(partition), new_clock.to_bytes())
        # Stale due entries go last: until the clock above is in the changelog, they are
        # how a redelivery finds the accounts this offset re-evaluated.
        for key in self._message.stale:
            self.state.delete(key)
        if self._metrics is not None:
            self._metrics.MESSAGES_PROCESSED.labels(agent=AGENT).inc()
            if isinstance(message, Envelope):
                self._metrics.EVENTS_PROCESSED.labels(agent=AGENT).inc(len(message.events))

    def tick_limit(self, newest_event: float) -> float:
        """The latest time a tick may move a partition's clock to, in epoch seconds.

        Live: the wall clock plus :data:`TICK_SKEW_SECONDS` (the leader sends ticks at its
        own wall-clock time). Replay, where time comes only from the data: the partition's
        newest event time (``newest_event``) plus ``replay_tick_max_ahead_seconds``.
        """
        if self.settings.replay:
            return newest_event + self.settings.replay_tick_max_ahead_seconds
        return time.time() + TICK_SKEW_SECONDS

    def _advance(self, clock_now: float, message: Envelope | Tick) -> float:
        """The partition clock after ``message`` (monotone)."""
        wall = time.time()
        if isinstance(message, Tick):
            candidate = message.now
        else:
            candidate = max((e.timestamp for e in message.events), default=clock_now)
            if not self.settings.replay:
                candidate = min(candidate, wall + FUTURE_TOLERANCE_SECONDS)
        now = max(clock_now, candidate)
        if not self.settings.replay:
            now = max(now, wall)
        return now

    def _arrivals(self, envelope: Envelope) -> dict[AccountKey, list[Event]]:
        """The envelope's account and its events, unless it cannot be stepped."""
        workspace, account_id = envelope.workspace, envelope.key
        if not account_id:
            self._count_dead_letter("no_account")
            return {}
        try:
            self._message.arrival_keys = tables.AccountKeys(workspace, account_id)
        except tables.StateKeyError as exc:
            log.warning("score: skipping p%d@%d: %s", self._message.partition,
                        self._message.offset, exc)
            self._count_dead_letter("bad_key")
            return {}
        self._message.arrival = (workspace, account_id)
        return {self._message.arrival: [e for e in envelope.events if e.workspace == workspace]}

    # ----------------------------------------------------------------- due index

    def pop_until(self, until: int, arriving: Collection[AccountKey]) -> list[AccountKey]:
        """The accounts of the message's partition due at or before ``until`` (the
        driver's :class:`~scoring.driver.DueIndex`): a key-ordered range scan of its
        RocksDB, saved when the partition's earliest due second is known to be later.

        Entries that no account record backs any more (left behind by an earlier crash)
        are deleted after the clock is written; an account this offset already
        re-evaluated (a redelivery) has its effects re-written and re-sent instead.
        """
        message = self._message
        partition = message.partition
        if partition in self._first_due_known:
            first = self._first_due.get(partition)
            if first is None or first > until:
                return []
        entries = list(tables.due_entries(self.state, until))
        # Everything at or before ``until`` is handled below; the new due entries the
        # steps write lower this hint again through _note_due.
        self._first_due[partition] = tables.first_due(self.state, after=until)
        self._first_due_known.add(partition)
        due: list[AccountKey] = []
        for key, second, workspace, account_id in entries:
            account = (workspace, account_id)
            if account in arriving:
                self._note_due(partition, second)  # until the envelope's step replaces it
                continue  # the envelope of this message re-evaluates it with its events
            record = self._load_account(workspace, account_id)
            if record is not None and record.applied >= message.offset:
                # Redelivery: this offset already re-evaluated the account (and wrote the
                # entry its record names again).
                self._redeliver_account(message.offset, workspace, account_id, record)
                if record.due == second:
                    continue
            elif record is not None and record.due == second:
                message.records[account] = record
                due.append(account)  # its step writes the next entry
            # else: left behind by an earlier crash; the real one exists, if any
            message.stale.append(key)
        return due

    def _note_due(self, partition: int, due: int | None) -> None:
        if due is None or partition not in self._first_due_known:
            return
        first = self._first_due.get(partition)
        if first is None or due < first:
            self._first_due[partition] = due

    # ----------------------------------------------------------------- accounts

    def load(self, key: AccountKey, user_ids: Sequence[str]) -> _Loaded | None:
        """The account's state and its users' before a step (the driver's
        :class:`~scoring.driver.Accounts`); None for an envelope this account applied
        already, whose effects are re-written and re-sent instead."""
        message = self._message
        # The envelope's account had its keys checked and built by _arrivals.
        keys = message.arrival_keys if key == message.arrival and message.arrival_keys \
            else tables.AccountKeys(*key)
        record: AccountRecord | None
        if key in message.records:
            record = message.records.pop(key)  # due: checked by pop_until
        else:
            raw = self.state.get(keys.account)
            record = AccountRecord.from_bytes(raw) if raw is not None else None
            if record is not None and record.applied >= message.offset:
                self._redeliver_account(message.offset, *key, record)
                return None
        users = {}
        for user_id in user_ids:
            raw = self.state.get(keys.user(user_id))
            if raw is not None:
                users[user_id] = UserState.from_bytes(raw)
        account = AccountState.from_bytes(record.state) if record is not None else None
        return _Loaded(account, users, record, keys)

    def failed(self, key: AccountKey, error: Exception) -> None:
        # A bug or an input the core cannot take must not stop the partition: the
        # message is counted and logged, and the account keeps its previous state.
        log.error("score: step failed for %s/%s at p%d@%d", *key, self._message.partition,
                  self._message.offset, exc_info=error)
        self._count_dead_letter("score_failed")

    def save(self, key: AccountKey, loaded: Loaded, result: StepResult, due: int | None,
             events: Sequence[Event]) -> None:
        """Write the account record (the commit point, carrying the users), its users and
        its due entry, and queue its changes (see the module doc)."""
        assert isinstance(loaded, _Loaded)  # what load gave for this step
        message = self._message
        offset, record, keys = message.offset, loaded.record, loaded.keys
        workspace, account_id = key
        # The core drops what it cannot use (a malformed event, a trait that fails its
        # check) and goes on: say so where operators look, a bounded number per message.
        for why in result.skipped[:MAX_SKIPPED_REPORTED]:
            self._dead_letter("skipped_by_scoring", why[:500], workspace=workspace,
                              payload={"account_id": account_id, "offset": offset})
        changes = [HEALTH_CHANGES.encode(change) for change in result.changes]
        redo = [(uid, user.to_bytes()) for uid, user in sorted(result.users.items())]
        committed = self._committed(message.partition)
        outbox = [(o, cs) for o, cs in (record.outbox if record else []) if o >= committed]
        if changes:
            outbox.append((offset, changes))
        # The account state gets half of the record's byte budget, the users and changes
        # it carries the rest. Shedding depends on the state alone, so replay and live
        # agree; the outbox (which depends on commits) is only ever trimmed below.
        state, shed = encode_within(result.account, self.settings.state_record_max_bytes // 2)
        if shed and self._metrics is not None:
            self._metrics.STATE_USERS_SHED.inc(len(shed))
        new_record = AccountRecord(state=state, applied=offset, due=due, redo=redo,
                                   outbox=outbox[-MAX_RECENT_OFFSETS:])
        raw_record = self._bounded_record(new_record, offset)
        if raw_record is None:
            self._dead_letter(
                "state_record_too_large",
                f"account {account_id} would need a state record over "
                f"{self.settings.state_record_max_bytes} bytes even without its users' "
                f"summaries; the message's {len(events)} events were not applied",
                workspace=workspace,
                payload={"account_id": account_id, "offset": offset,
                         "events": [e.message_id for e in events[:100]]})
            return
        old_due = record.due if record is not None else None
        # Order matters (one changelog partition keeps it): the new due entry, then the
        # account record (the commit point, carrying the users), then the users.
        if due is not None and due != old_due:
            self.state.put(keys.due(due), b"")
            self._note_due(message.partition, due)
        self.state.put(keys.account, raw_record)
        for user_id, raw_user in redo:
            self.state.put(keys.user(user_id), raw_user)
        if key == message.arrival:
            # A due account's old entry is among the stale ones, deleted after the clock.
            if old_due is not None and old_due != due:
                self.state.delete(keys.due(old_due))
        elif changes or redo:
            message.touched.append(key)
        self._send(workspace, account_id, changes)
        if self._metrics is not None:
            for change in result.changes:
                for reason in change.reasons:
                    self._metrics.HEALTH_CHANGES.labels(reason=reason).inc()
            if changes and events:
                latency = max(0.0, time.time() - max(e.received_at for e in events))
                for _ in changes:
                    self._metrics.EVENT_TO_CHANGE_LATENCY.observe(latency)

    def _bounded_record(self, record: AccountRecord, offset: int) -> bytes | None:
        """``record`` serialised within ``state_record_max_bytes``, or None.

        Over the limit, the outbox loses its oldest entries first (they only serve a
        redelivery of older offsets, which the committed offset makes unlikely), never
        this offset's changes. Kafka would refuse a larger changelog record, and the
        failed write would stop the partition for every workspace in it.
        """
        limit = self.settings.state_record_max_bytes
        raw = record.to_bytes()
        while len(raw) > limit and record.outbox and record.outbox[0][0] != offset:
            del record.outbox[0]
            raw = record.to_bytes()
        return raw if len(raw) <= limit else None

    # ----------------------------------------------------------------- redelivery

    def _redeliver_account(
        self, offset: int, workspace: str, account_id: str, record: AccountRecord,
    ) -> None:
        """``offset`` was already applied to this account: complete, never re-apply.

        If it was the last offset applied, its user records may be missing from the
        changelog (the crash came between the account record and them): write them again
        from the record. Re-send the health changes it produced (same ids).
        """
        if record.applied == offset:
            keys = tables.AccountKeys(workspace, account_id)
            for user_id, raw_user in record.redo:
                self.state.put(keys.user(user_id), raw_user)
            if record.due is not None:
                self.state.put(keys.due(record.due), b"")
                self._note_due(self._message.partition, record.due)
        self._send(workspace, account_id, record.outbox_for(offset))

    def _redeliver_partition(
        self, offset: int, clock: PartitionClock, message: Envelope | Tick
    ) -> None:
        """The clock says ``offset`` was fully processed: re-send and re-write its effects."""
        accounts = list(clock.recent_for(offset))
        if isinstance(message, Envelope) and message.key:
            accounts.append((message.workspace, message.key))
        for workspace, account_id in accounts:
            try:
                record = self._load_account(workspace, account_id)
            except tables.StateKeyError:
                continue
            if record is not None and record.applied >= offset:
                self._redeliver_account(offset, workspace, account_id, record)

    # ----------------------------------------------------------------- helpers

    def config_for(self, workspace: str) -> ScoringConfig:
        """The scoring config ``workspace`` is scored under for the current message: its
        own file's when it has one, else the shared one (the same for the whole message).
        """
        config = self._configs.get(workspace)
        if config is None:
            config = (self.workspaces.scoring_for(workspace) if self.workspaces is not None
                      else self.config)
            self._configs[workspace] = config
        return config

    def _send(self, workspace: str, account_id: str, changes: Iterable[bytes]) -> None:
        """Queue health changes; they go out after the message's state is written."""
        key = change_key(workspace, account_id)
        self._outgoing.extend((key, change) for change in changes)

    def _load_account(self, workspace: str, account_id: str) -> AccountRecord | None:
        raw = self.state.get(tables.account_key(workspace, account_id))
        return AccountRecord.from_bytes(raw) if raw is not None else None

    def _load_clock(self, partition: int) -> PartitionClock:
        raw = self.state.get(tables.clock_key(partition))
        return PartitionClock.from_bytes(raw) if raw is not None else PartitionClock()

    def _committed(self, partition: int) -> int:
        """The by-account offset committed for ``partition`` (next to read), or -1.

        Outbox entries below it can never be redelivered and are pruned.
        """
        for tp, value in committed_offsets(self.app.consumer).items():
            if tp.topic == self.settings.topics.by_account and tp.partition == partition:
                return value if value is not None else -1
        return -1

    def _count_dead_letter(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.EVENTS_DEAD_LETTERED.labels(reason=reason).inc()

    def _dead_letter(self, reason: str, detail: str, *, raw: bytes | None = None,
                     workspace: str | None = None, payload: Any = None) -> None:
        """Count ``reason`` and queue a dead letter; it is sent after the message's writes."""
        self._count_dead_letter(reason)
        extra = {"payload": payload} if payload is not None else {"raw": raw}
        self._dead_letters.append(DeadLetter(reason, detail, "kafka", workspace, time.time(),
                                             **extra))


def _metrics() -> Any:
    try:
        from agents import metrics
    except ImportError:  # pragma: no cover - metrics module absent in stripped installs
        return None
    return metrics


# --------------------------------------------------------------------- registration


def register(app: faust.App, settings: Settings) -> None:
    """Declare the score agent, its table, its topics and the tick timer on ``app``."""
    from agents.workspaces import Workspaces

    workspaces = Workspaces.of_app(app, settings)
    names = settings.topics
    by_account = app.topic(
        names.by_account, schema=tables.raw_schema(), partitions=settings.partitions
    )
    changes = app.topic(
        names.health_changes, schema=tables.raw_schema(), partitions=settings.partitions
    )
    table = tables.define_state_table(app, settings)
    processor = ScoreProcessor(app, settings, workspaces.shared.scoring, table, changes,
                               workspaces)

    @app.agent(by_account, name=AGENT, concurrency=1)
    async def score(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            await finish_even_if_cancelled(
                processor.process(message.partition, message.offset, event.value))

    @app.timer(settings.tick_interval, on_leader=True, name="score-ticks")
    async def send_ticks() -> None:
        if settings.replay:
            return  # replay time comes only from the events (and explicit ticks)
        await send_ticks_now(by_account, settings.partitions, time.time())

    tabledir = app.conf.tabledir

    # The check must run before any partition DB is opened, and only in a process that
    # starts the app (tests and tools build apps they never start).
    async def _check_local_state() -> None:
        if tables.discard_untrusted_local_state(tabledir):
            log.warning("score: local state was left by a worker that wrote RocksDB before "
                        "the changelog and did not stop cleanly; rebuilding %s from its "
                        "changelog", tables.STATE_TABLE)
        else:
            log.info("score: keeping local state of %s; recovery replays its changelog "
                     "from each partition's persisted offset", tables.STATE_TABLE)

    run_before_first_start(app, _check_local_state)
    if settings.restore_bulk_records:
        restore_before_recovery(app, table, functools.partial(_restore, settings))

    processor.state.settle_at_handover(app)


async def _restore(settings: Settings, topic: str, persisted: Mapping[int, int | None],
                   deadline: float, db_for: Callable[[int], Any]) -> Mapping[int, int]:
    """The state table's partitions restored in bulk before Faust's recovery (see
    :mod:`state.restore`)."""
    done = await restore(settings.kafka_bootstrap, topic, persisted, db_for,
                         deadline=deadline, min_records=settings.restore_bulk_records,
                         security=settings.kafka_security)
    if done.records:
        log.info("score: restored %d changelog records into %d partitions in bulk in %.1f s"
                 "%s", done.records, len(done.offsets), done.seconds,
                 "; the rest is left to the usual recovery" if done.cut_short else "")
    return done.offsets


async def send_ticks_now(topic: Any, partitions: int, now: float) -> None:
    """One tick with event time ``now`` into every partition of the by-account topic."""
    for partition in range(partitions):
        await topic.send(value=ENVELOPES.encode(Tick(now, partition)), partition=partition)
