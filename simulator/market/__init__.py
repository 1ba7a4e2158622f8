"""The world outside the contracts: fundamental price paths, the external market (price impact of
liquidations, depth and market makers) and the oracle agent that feeds the on-chain oracles."""

from simulator.market.external import ExternalMarket, ExternalSnapshot, MakerState
from simulator.market.oracle_agent import OracleAgent, OraclePush
from simulator.market.paths import FundamentalPaths, generate_fundamental_paths

__all__ = [
    "ExternalMarket",
    "ExternalSnapshot",
    "FundamentalPaths",
    "MakerState",
    "OracleAgent",
    "OraclePush",
    "generate_fundamental_paths",
]
