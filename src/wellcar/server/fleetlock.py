"""FleetLock: the reboot semaphore that Zincati (and other FleetLock clients) ask before rebooting.

Each reboot group is a counting semaphore with owned, recursive locks, as in airlock:
`try_lock` gives a node one of its group's slots unless all are taken (a node that holds
one gets it again), `unlock_if_held` gives it back (a node that holds none is told "done").

All state lives in the database, so any number of `wellcar serve` processes agree. The
decision for a group is serialised: on SQLite the transaction holds the database's write
lock from `BEGIN IMMEDIATE` on; on PostgreSQL it locks the group's row (`FOR NO KEY
UPDATE`, after creating the row if the group is new), so a second decision for the same
group waits until the first one has committed and then counts its holder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from wellcar.logline import log_fields
from wellcar.server.clock import Clock
from wellcar.server.db import schema as t
from wellcar.server.db.engine import READ_ONLY, begin_write
from wellcar.server.errors import ConfigError, InvalidInput, NotFound

log = logging.getLogger("wellcar.server.fleetlock")

DEFAULT_GROUP = "default"  # the group a client that names none belongs to (protocol spec)
MAX_NODE_ID_LENGTH = 255
MAX_GROUP_LENGTH = 255
MAX_FLEETLOCK_SLOTS = 100_000
GROUP_PATTERN = "^[a-zA-Z0-9.-]+$"
_GROUP_NAME = re.compile(r"[a-zA-Z0-9.-]+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

_group, _holder = t.fleetlock_group, t.fleetlock_holder


class LockResult(StrEnum):
    LOCKED = "locked"  # the node took a free slot
    ALREADY_HELD = "already_held"  # the node held a slot already (recursive lock)
    GROUP_FULL = "group_full"  # every slot is held by another node


class UnlockResult(StrEnum):
    RELEASED = "released"
    NOT_HELD = "not_held"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who asks: the client's id (the lock owner) and its reboot group, both validated."""

    node_id: str
    group: str


@dataclass(frozen=True, slots=True)
class LockDecision:
    result: LockResult
    holders: int  # holders of the group once the decision is committed
    slots: int  # the group's slots at the time of the decision

    @property
    def granted(self) -> bool:
        return self.result is not LockResult.GROUP_FULL


@dataclass(frozen=True, slots=True)
class UnlockDecision:
    result: UnlockResult
    holders: int  # holders of the group left once the decision is committed


@dataclass(frozen=True, slots=True)
class Holder:
    node_id: str
    acquired_at: datetime


@dataclass(frozen=True, slots=True)
class GroupState:
    name: str
    slots: int  # in effect: the configured slots, else the server's default
    configured_slots: int | None  # None: the group follows the server's default
    holders: tuple[Holder, ...]
    updated_at: datetime | None  # None: the group has never been used or configured

    @property
    def free_slots(self) -> int:
        # Slots lowered below the holders leave holders in place and nothing free.
        return max(0, self.slots - len(self.holders))


# ----------------------------------------------------------------------------- validation


def check_group_name(name: str) -> str:
    """The group name, or InvalidInput saying what is wrong with it."""
    if not name:
        raise InvalidInput("group must not be empty")
    if len(name) > MAX_GROUP_LENGTH:
        raise InvalidInput(f"group is longer than {MAX_GROUP_LENGTH} characters")
    if not _GROUP_NAME.fullmatch(name):
        raise InvalidInput(f"group {name!r} must match {GROUP_PATTERN}")
    return name


def check_node_id(node_id: str) -> str:
    """The node id (case-sensitive, kept as sent), or InvalidInput saying what is wrong."""
    if not node_id:
        raise InvalidInput("id must not be empty")
    if len(node_id) > MAX_NODE_ID_LENGTH:
        raise InvalidInput(f"id is longer than {MAX_NODE_ID_LENGTH} characters")
    if _CONTROL_CHARACTER.search(node_id):
        raise InvalidInput("id must not contain control characters")
    return node_id


def check_slots(slots: int) -> int:
    if not 0 <= slots <= MAX_FLEETLOCK_SLOTS:
        raise InvalidInput(f"slots must be between 0 and {MAX_FLEETLOCK_SLOTS}")
    return slots


# ------------------------------------------------------------------------ database steps


def _insert_group_if_absent(conn: Connection, name: str, now: datetime) -> None:
    values = {"name": name, "slots": None, "updated_at": now}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(_group).values(values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(_group).values(values).on_conflict_do_nothing())


def _lock_group_row(conn: Connection, name: str) -> int | None:
    """The group's configured slots, its row locked until the transaction ends (PostgreSQL).

    NO KEY UPDATE, because inserting a holder takes a KEY SHARE lock on the group row it
    references, which FOR UPDATE would conflict with. SQLite ignores the clause: there the
    whole transaction already holds the database's write lock.
    """
    query = select(_group.c.slots).where(_group.c.name == name).with_for_update(key_share=True)
    slots: int | None = conn.execute(query).scalar_one()
    return slots


def _holds(conn: Connection, group: str, node_id: str) -> bool:
    query = select(_holder.c.node_id).where(
        _holder.c.group_name == group, _holder.c.node_id == node_id
    )
    return conn.execute(query).first() is not None


def _count_holders(conn: Connection, group: str) -> int:
    query = select(func.count()).select_from(_holder).where(_holder.c.group_name == group)
    count: int = conn.execute(query).scalar_one()
    return count


def try_lock(
    conn: Connection, identity: NodeIdentity, default_slots: int, now: datetime
) -> LockDecision:
    """RecursiveLock: take (or keep) a slot of the node's group if one is free.

    Call inside a write transaction (`begin_write`): the decision is only race-free while
    the group is locked, and it is released when that transaction ends.
    """
    _insert_group_if_absent(conn, identity.group, now)
    configured = _lock_group_row(conn, identity.group)
    slots = default_slots if configured is None else configured
    holders = _count_holders(conn, identity.group)
    if _holds(conn, identity.group, identity.node_id):
        return LockDecision(LockResult.ALREADY_HELD, holders, slots)
    if holders >= slots:
        return LockDecision(LockResult.GROUP_FULL, holders, slots)
    conn.execute(
        _holder.insert().values(
            group_name=identity.group, node_id=identity.node_id, acquired_at=now
        )
    )
    return LockDecision(LockResult.LOCKED, holders + 1, slots)


def release(conn: Connection, group: str, node_id: str) -> bool:
    """Delete the node's hold on a slot of the group; False if it held none."""
    deleted = conn.execute(
        delete(_holder).where(_holder.c.group_name == group, _holder.c.node_id == node_id)
    )
    return deleted.rowcount > 0


def unlock_if_held(conn: Connection, identity: NodeIdentity) -> UnlockDecision:
    """UnlockIfHeld: give back the node's slot; not holding one is not an error.

    Releasing only ever frees a slot, so it needs no group lock: a concurrent `try_lock`
    either counts the holder or does not, and both are correct.
    """
    released = release(conn, identity.group, identity.node_id)
    result = UnlockResult.RELEASED if released else UnlockResult.NOT_HELD
    return UnlockDecision(result, _count_holders(conn, identity.group))


def set_group_slots(conn: Connection, name: str, slots: int | None, now: datetime) -> None:
    """Configure the group's slots (None: follow the server's default), creating it if new."""
    _insert_group_if_absent(conn, name, now)
    conn.execute(update(_group).where(_group.c.name == name).values(slots=slots, updated_at=now))


def group_states(
    conn: Connection, default_slots: int, *, only: str | None = None
) -> list[GroupState]:
    """Every group the database knows (or just `only`), by name, holders oldest first."""
    groups_query = select(_group.c.name, _group.c.slots, _group.c.updated_at).order_by(
        _group.c.name
    )
    holders_query = select(_holder.c.group_name, _holder.c.node_id, _holder.c.acquired_at)
    if only is not None:
        groups_query = groups_query.where(_group.c.name == only)
        holders_query = holders_query.where(_holder.c.group_name == only)
    holders_by_group: dict[str, list[Holder]] = {}
    for group_name, node_id, acquired_at in conn.execute(
        holders_query.order_by(_holder.c.acquired_at, _holder.c.node_id)
    ):
        holders_by_group.setdefault(group_name, []).append(Holder(node_id, acquired_at))
    return [
        GroupState(
            name=name,
            slots=default_slots if configured is None else configured,
            configured_slots=configured,
            holders=tuple(holders_by_group.get(name, ())),
            updated_at=updated_at,
        )
        for name, configured, updated_at in conn.execute(groups_query)
    ]


# ------------------------------------------------------------------------------- service


class FleetLock:
    """The FleetLock operations of one server process, each in its own transaction.

    Log lines are written after the transaction commits, so a logged lock is a held lock.
    """

    def __init__(self, engine: Engine, clock: Clock, default_slots: int) -> None:
        if not 0 <= default_slots <= MAX_FLEETLOCK_SLOTS:
            raise ConfigError(
                f"FleetLock default slots must be between 0 and {MAX_FLEETLOCK_SLOTS}, "
                f"not {default_slots}"
            )
        self.engine = engine
        self.clock = clock
        self.default_slots = default_slots

    def pre_reboot(self, identity: NodeIdentity) -> LockDecision:
        now = self.clock()
        with begin_write(self.engine) as conn:
            decision = try_lock(conn, identity, self.default_slots, now)
        log.info(
            "fleetlock pre-reboot",
            extra=log_fields(
                result=decision.result,
                group=identity.group,
                node_id=identity.node_id,
                holders=decision.holders,
                slots=decision.slots,
            ),
        )
        return decision

    def steady_state(self, identity: NodeIdentity) -> UnlockDecision:
        with begin_write(self.engine) as conn:
            decision = unlock_if_held(conn, identity)
        # Every client reports steady state when it starts; only a real release is news.
        level = logging.INFO if decision.result is UnlockResult.RELEASED else logging.DEBUG
        log.log(
            level,
            "fleetlock steady-state",
            extra=log_fields(
                result=decision.result,
                group=identity.group,
                node_id=identity.node_id,
                holders=decision.holders,
            ),
        )
        return decision

    def groups(self) -> list[GroupState]:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return group_states(conn, self.default_slots)

    def group(self, name: str) -> GroupState:
        """The group's state; a group never used nor configured has the default slots."""
        check_group_name(name)
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = group_states(conn, self.default_slots, only=name)
        if found:
            return found[0]
        return GroupState(name, self.default_slots, None, (), None)

    def set_slots(self, name: str, slots: int | None) -> GroupState:
        check_group_name(name)
        if slots is not None:
            check_slots(slots)
        now = self.clock()
        with begin_write(self.engine) as conn:
            set_group_slots(conn, name, slots, now)
            state = group_states(conn, self.default_slots, only=name)[0]
        log.info(
            "fleetlock slots-set",
            extra=log_fields(
                group=name,
                slots="default" if slots is None else slots,
                holders=len(state.holders),
            ),
        )
        return state

    def force_release(self, group: str, node_id: str) -> None:
        """An admin frees a slot whose holder will not come back; NotFound if not held."""
        check_group_name(group)
        check_node_id(node_id)
        with begin_write(self.engine) as conn:
            released = release(conn, group, node_id)
        if not released:
            raise NotFound(f"node {node_id!r} holds no reboot slot in FleetLock group {group!r}")
        log.warning("fleetlock force-release", extra=log_fields(group=group, node_id=node_id))
