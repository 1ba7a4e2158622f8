"""The numpy model: a second, independent implementation of the contracts' math, for fast sweeps
and differential tests against the chain.

Each module mirrors one Solidity file, with the same function names in snake_case:

| model                   | Solidity                                  |
| ----------------------- | ----------------------------------------- |
| `fixed_point`           | contracts/libraries/FixedPointMath.sol    |
| `margin`                | contracts/libraries/MarginMath.sol        |
| `depth`                 | contracts/libraries/DepthCurve.sol        |
| `position`              | contracts/libraries/PositionMath.sol      |
| `funding`               | contracts/libraries/FundingMath.sol       |
| `liquidation`           | contracts/libraries/LiquidationMath.sol   |
| `perp_engine`           | contracts/engine/PerpEngine.sol (its account storage's form: `storage`) |
| `perp_engine_views`     | contracts/engine/PerpEngineViews.sol, and the model's vectorised views |
| `liquidation_engine`    | contracts/liquidation/LiquidationEngine.sol |
| `liquidation_views`     | the model's fast views of the liquidation engine (no Solidity counterpart) |
| `oracle_router`         | contracts/oracle/OracleRouter.sol and PriceFeed.sol |
| `errors`, `events`      | the custom errors and events of the interfaces |
| `state`                 | the chain: blocks, time, oracle prices, atomic transactions |
| `protocol`              | `Protocol`: all of the above in one object |

PerpEngine inherits two contracts: PerpEngineStorage.sol (its constants and storage: in the model,
`perp_engine`'s storage section, kept in `storage`'s arrays) and PerpEngineViews.sol (its batch
views: `perp_engine_views`). LiquidationEngine is a separate contract that calls the engine through
IPerpEngine: the model's holds the engine (`engine`) and calls its public functions only. The
model's engine carries the chain's state (`state.ChainState`); the other contracts run on it.

Naming: Python names are snake_case; event fields and error arguments keep their Solidity
(camelCase) names so that model and chain logs compare field by field.
"""

from simulator.model.errors import ModelRevert
from simulator.model.events import Event
from simulator.model.liquidation_engine import Action, LiquidationParams, Plan, RateWindow
from simulator.model.margin import Tier
from simulator.model.perp_engine import Market, MarketParams, MarketView
from simulator.model.protocol import DEPLOYER, VAULT, Protocol

__all__ = [
    "Action",
    "DEPLOYER",
    "Event",
    "LiquidationParams",
    "Market",
    "MarketParams",
    "MarketView",
    "ModelRevert",
    "Plan",
    "Protocol",
    "RateWindow",
    "Tier",
    "VAULT",
]
