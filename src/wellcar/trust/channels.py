"""Which channel a node follows, and the channel-name rule (stdlib only: the agent's
config reads it without loading python-tuf).

A signed target names its channel (custom ``channel``). The node refuses a payload of
another channel than its own unless the operator chose that channel: otherwise whoever
controls the update server could move stable nodes onto any alpha, edge or customer build.
See docs/trust.md, "The node's channel".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CHANNEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


class ChannelSource(StrEnum):
    """Where a node's channel came from, in the order they are tried."""

    CHANNEL = "CHANNEL= in update.conf"  # the operator's explicit choice
    GROUP = "GROUP= in update.conf"  # Flatcar's way: GROUP names the channel
    RUNNING = "the running release"  # the signed target of the version this node runs


@dataclass(frozen=True)
class NodeChannel:
    name: str
    source: ChannelSource
    running: str | None  # the running release's signed channel, when the metadata has it

    @property
    def switched(self) -> bool:
        """The operator moved the node to another channel than the one it runs."""
        return self.running is not None and self.name != self.running

    def describe(self) -> str:
        text = f"channel {self.name} (from {self.source.value})"
        return text + (f", switched from {self.running}" if self.switched else "")


def choose_channel(
    configured: str | None, group: str, running: str | None, known: frozenset[str]
) -> NodeChannel | None:
    """The node's channel: CHANNEL= if set; else GROUP when it names a channel of the
    release tree (``known``); else the running release's signed channel; else None."""
    if configured:
        return NodeChannel(configured, ChannelSource.CHANNEL, running)
    if group in known:
        return NodeChannel(group, ChannelSource.GROUP, running)
    if running:
        return NodeChannel(running, ChannelSource.RUNNING, running)
    return None
