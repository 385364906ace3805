"""Simulated update_engine nodes: they speak Omaha to a server like real Flatcar nodes.

Used by `wellcar demo` to show a rollout, and by tests. The client side of the
protocol only; it shares nothing with the server but `wellcar.omaha`.
"""

from wellcar.fleetsim.node import NodePhase, SimulatedNode

__all__ = ["NodePhase", "SimulatedNode"]
