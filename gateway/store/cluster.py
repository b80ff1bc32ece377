"""The hot path's store on Redis Cluster: a multiplexed connection per primary, each command
sent to the primary serving its key's slot.

Commands are routed one by one (a ``MULTI``...``EXEC`` group as one unit, by its first key), so
a batch may span slots and nodes: each node gets its share in one write, the nodes are asked at
once, and the replies come back in the batch's order. Nothing is atomic across nodes; the
gateway keeps what must change together under one hash tag (``redis_keys``).

The slot map comes from ``CLUSTER SLOTS`` of any node (the URL's seeds at first). A ``MOVED``
reply (the slot has a new owner: resharding, a failover) re-reads the map and sends the command
again to the new owner; ``ASK`` (the slot is being moved and this key has gone ahead) sends it
to the importing node once, after ``ASKING``; ``TRYAGAIN`` (a multi-key command or a
transaction whose keys are split by a move under way) is sent again after a short wait. All
three mean the command did not run, so sending it again cannot apply it twice. A connection
that breaks fails its commands as on one server (they may or may not have run) and makes the
next call re-read the map, so a primary's replica taking over is found once the cluster has
promoted it.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import (
    ClusterDownError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.store.address import ClusterSeeds
from gateway.store.multiplexed import Command, Link, Location, Store, raise_errors

Node = tuple[str, int]

REDIRECTS = 16
"""Redirections and waits one command may go through before it fails (as Redis being away)."""
TRYAGAIN_WAIT = 0.02

_KEYLESS = frozenset(
    {"PING", "ROLE", "SCRIPT", "TIME", "INFO", "CLUSTER", "ECHO", "DBSIZE", "ASKING"}
)
_SCRIPTS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def key_of(command: Command) -> str | bytes | None:
    """The key that decides where ``command`` goes, None for a command without keys."""
    name = str(command[0]).upper()
    if name in _SCRIPTS:
        return _text(command[3]) if int(command[2]) > 0 else None
    if name in ("XREAD", "XREADGROUP"):
        words = [str(word).upper() for word in command]
        return _text(command[words.index("STREAMS") + 1])
    if name in _KEYLESS or len(command) < 2:
        return None
    return _text(command[1])


def _text(value: str | int | float | bytes) -> str | bytes:
    return value if isinstance(value, str | bytes) else str(value)


def slot_of(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


@dataclass
class _Unit:
    """A command, or a ``MULTI``...``EXEC`` group, sent and redirected as one."""

    start: int
    commands: list[Command]
    slot: int | None
    ask: Node | None = None
    """Send it to this node once, after ``ASKING``."""


def _units(commands: Sequence[Command]) -> list[_Unit]:
    """``commands`` as units, each routed by the first key among its commands."""
    units: list[_Unit] = []
    group: _Unit | None = None
    for index, command in enumerate(commands):
        name = str(command[0]).upper()
        if group is None:
            unit = _Unit(index, [command], None)
            units.append(unit)
            if name == "MULTI":
                group = unit
        else:
            unit = group
            unit.commands.append(command)
            if name in ("EXEC", "DISCARD"):
                group = None
        if unit.slot is None and (key := key_of(command)) is not None:
            unit.slot = slot_of(key)
    return units


def _redirect(replies: list[Any]) -> tuple[str, int, Node] | None:
    """The first ``MOVED``/``ASK`` among a unit's replies: kind, slot and node."""
    for reply in replies:
        if isinstance(reply, ResponseError) and not isinstance(reply, TryAgainError):
            kind, _, rest = str(reply).partition(" ")
            if kind in ("MOVED", "ASK"):
                slot, _, address = rest.partition(" ")
                host, _, port = address.rpartition(":")
                return kind, int(slot), (host, int(port))
    return None


class ClusterMultiplexedRedis(Store):
    """``MultiplexedRedis``'s interface over every primary of a Redis Cluster."""

    def __init__(self, seeds: ClusterSeeds, timeout: float) -> None:
        self._seeds = seeds
        self._timeout = timeout
        self._options: dict[str, Any] = {}
        if seeds.username:
            self._options["username"] = seeds.username
        if seeds.password:
            self._options["password"] = seeds.password
        if seeds.tls:
            self._options["ssl"] = True
        self._links: dict[Node, Link] = {}
        self._slots: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self._stale = True
        self._version = 0
        self._refreshing = asyncio.Lock()

    async def execute(
        self, commands: Sequence[Command], *, raise_on_error: bool = True
    ) -> list[Any]:
        """Several commands, each at the primary of its slot, every node asked at once; their
        replies in order. An error reply of any of them is raised (after all have answered),
        unless ``raise_on_error`` is False: then it is left in its place, as an exception."""
        replies: list[Any] = [None] * len(commands)
        todo = _units(commands)
        for attempt in range(REDIRECTS):
            await self._ensure_map()
            todo = await self._send(todo, replies)
            if not todo:
                return raise_errors(replies) if raise_on_error else replies
            if attempt:
                await asyncio.sleep(TRYAGAIN_WAIT * attempt)
        raise TryAgainError("Redis Cluster kept redirecting; try again")

    async def load_script(self, source: str) -> None:
        """Make a Lua script known to every primary."""
        await self._ensure_map()
        await asyncio.gather(
            *(self._link(node).send([("SCRIPT", "LOAD", source)]) for node in self._primaries())
        )

    async def role(self) -> str:
        """``master`` when every slot is served and every primary answers as one; else
        ``slave`` (the map is read again on the next call). Raises when a primary does not
        answer."""
        await self._refresh(self._version)
        if None in self._slots:
            self._stale = True
            raise ClusterDownError("Some hash slots of the cluster are not served")
        replies = await asyncio.gather(
            *(self._link(node).send([("ROLE",)]) for node in self._primaries())
        )
        roles = [str(raise_errors(reply)[0][0]) for reply in replies]
        if any(role != "master" for role in roles):
            self._stale = True
            return "slave"
        return "master"

    async def aclose(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()

    async def _send(self, units: list[_Unit], replies: list[Any]) -> list[_Unit]:
        """Send ``units`` to their nodes, put their replies in place; the units to send again
        (redirected, or to retry)."""
        by_node: dict[Node, list[_Unit]] = defaultdict(list)
        for unit in units:
            by_node[unit.ask or self._node_for(unit.slot)].append(unit)
        nodes = list(by_node)
        answers: list[list[list[Any]] | BaseException]
        if len(nodes) == 1:  # the usual batch: one team's keys (no task to spawn)
            try:
                answers = [await self._send_to(nodes[0], by_node[nodes[0]])]
            except RedisError as exc:
                answers = [exc]
        else:
            answers = await asyncio.gather(
                *(self._send_to(node, by_node[node]) for node in nodes), return_exceptions=True
            )
        again: list[_Unit] = []
        failure: BaseException | None = None
        for node, answer in zip(nodes, answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, RedisConnectionError):
                    self._stale = True  # a failover may be under way: read the map again
                failure = failure or answer
                continue
            for unit, unit_replies in zip(by_node[node], answer, strict=True):
                if self._settled(unit, unit_replies, again):
                    replies[unit.start : unit.start + len(unit.commands)] = unit_replies
        if failure is not None:
            raise failure
        return again

    def _settled(self, unit: _Unit, unit_replies: list[Any], again: list[_Unit]) -> bool:
        """Whether the unit's replies are final; else the unit goes in ``again``."""
        unit.ask = None
        redirect = _redirect(unit_replies)
        if redirect is not None:
            kind, slot, node = redirect
            if kind == "MOVED":
                self._slots[slot] = node
                self._stale = True  # a move of one slot often comes with others
            elif len(unit.commands) == 1:
                unit.ask = node
            again.append(unit)  # ASK within a transaction: wait for the move to finish
            return False
        if any(isinstance(reply, TryAgainError) for reply in unit_replies):
            again.append(unit)
            return False
        return True

    async def _send_to(self, node: Node, units: list[_Unit]) -> list[list[Any]]:
        batch: list[Command] = []
        for unit in units:
            if unit.ask is not None:
                batch.append(("ASKING",))
            batch.extend(unit.commands)
        flat = await self._link(node).send(batch)
        out: list[list[Any]] = []
        position = 0
        for unit in units:
            position += unit.ask is not None  # ASKING's +OK
            out.append(flat[position : position + len(unit.commands)])
            position += len(unit.commands)
        return out

    def _node_for(self, slot: int | None) -> Node:
        if slot is None:
            return random.choice(self._primaries())  # noqa: S311 (spreading load, not a secret)
        node = self._slots[slot]
        if node is None:
            self._stale = True
            raise ClusterDownError(f"Hash slot {slot} is not served")
        return node

    def _primaries(self) -> list[Node]:
        nodes = self._known_primaries()
        if not nodes:
            raise ClusterDownError("No primary of the cluster is known")
        return nodes

    def _link(self, node: Node) -> Link:
        link = self._links.get(node)
        if link is None:

            async def locate() -> Location:
                return node

            link = Link(locate, self._options, self._timeout, primary_only=False)
            self._links[node] = link
        return link

    async def _ensure_map(self) -> None:
        if self._stale:
            await self._refresh(self._version)

    async def _refresh(self, seen: int) -> None:
        """Read the slot map from the first node that answers (known primaries, then the
        seeds), unless another caller has read it since ``seen``."""
        async with self._refreshing:
            if self._version != seen and not self._stale:
                return
            candidates = [*self._known_primaries(), *self._seeds.nodes]
            failure: RedisError | None = None
            for node in dict.fromkeys(candidates):
                try:
                    (reply,) = raise_errors(await self._link(node).send([("CLUSTER", "SLOTS")]))
                except RedisError as exc:
                    failure = exc
                    continue
                self._install(reply, node)
                return
            raise failure or RedisConnectionError("No node of the cluster answered")

    def _known_primaries(self) -> list[Node]:
        return sorted({node for node in self._slots if node is not None})

    def _install(self, reply: list[Any], asked: Node) -> None:
        slots: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        for start, end, primary, *_ in reply:
            host = str(primary[0]) or asked[0]  # an empty host: the node that answered
            node = (host, int(primary[1]))
            slots[int(start) : int(end) + 1] = [node] * (int(end) - int(start) + 1)
        self._slots = slots
        self._stale = False
        self._version += 1
        keep = set(slots) | set(self._seeds.nodes)
        for node in [n for n in self._links if n not in keep]:
            self._links.pop(node).close()
