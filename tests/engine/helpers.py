"""What the PerpEngine revert tests (tests/engine/test_*.py) share: the deployed system's constants
(tests/conftest.py's DEFAULT_MARKETS), account ids, market parameters, a stale oracle, small
set-ups, and the expected state of an account that holds one position.

Expected values are computed with the model's libraries (simulator/model/: fixed_point, depth,
margin, position, funding, liquidation), the exact mirror of contracts/libraries/; the helpers
below only compose them. A support module: no tests here."""

from simulator.chain.deploy import MarketSpec
from simulator.model import fixed_point as fp
from simulator.model import margin, position
from simulator.model.margin import Tier
from tests.conftest import BTC, WAD

ZERO = "0x" + "00" * 20
MAX_UINT = fp.MAX_UINT256
INT_MIN = -(2**255)
TOKEN_SCALE = 10**12  # USDC units -> WAD
BTC_PRICE = 100_000 * WAD
ETH_PRICE = 4_000 * WAD
IMR = WAD // 10
MMR = WAD // 20
MAX_IMPACT = WAD // 10
BAND = WAD // 100
BTC_DEPTH = 10_000_000 * WAD
ETH_DEPTH = 5_000_000 * WAD
HEARTBEAT = 3_600

# The markets' single default tier: MMR from notional 0, no deduction.
BASE_TIERS = (Tier(0, MMR, 0),)

FIELDS = (
    "imr",
    "mmr",
    "liquidationFee",
    "keeperShare",
    "depth2pct",
    "maxImpact",
    "maxOpenInterest",
    "maxFundingRate",
    "skewScale",
    "matchBand",
    "minPositionNotional",
)


def b32(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


def block_time(chain, receipt) -> int:
    return chain.provider.get_block(receipt.block_number).timestamp


def params(**overrides):
    """MarketParams tuple: MarketSpec defaults, BTC depth, with `overrides` by field name."""
    base = dict(zip(FIELDS, MarketSpec("X", 1, depth2pct=10_000_000).params()))
    unknown = set(overrides) - set(FIELDS)
    assert not unknown, unknown
    base.update(overrides)
    return tuple(base[f] for f in FIELDS)


def current_params(engine, market_id, **overrides):
    """The market's MarketParams tuple as the engine holds it, with `overrides` by field name."""
    current = engine.marketParams(market_id)
    base = {f: getattr(current, f) for f in FIELDS}
    base.update(overrides)
    return tuple(base[f] for f in FIELDS)


def cross_id(account) -> int:
    return int(account.address, 16)


def iso_id(account, market_id) -> int:
    return int(account.address, 16) | ((market_id + 1) << 160)


def make_stale(system, chain, market_id):
    """Moves the next block past the feed's heartbeat; returns (updatedAt, now)."""
    updated_at = system.feeds[market_id].latestRoundData()[3]
    now = updated_at + HEARTBEAT + 1
    chain.pending_timestamp = now
    return updated_at, now


def open_long(system, account, size, collateral_usd):
    """Funds `account` with `collateral_usd` and opens `size` of BTC against the vault, at any price."""
    system.fund(account, collateral_usd)
    return system.engine.openPosition(BTC, size, MAX_UINT, sender=account)


def underwater_long(system, engine, deployer, alice, bob):
    """alice long 1 BTC at $100k with $10,100, then BTC at $89k: value -$900."""
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 89_000)
    value_before = engine.accountValue(alice)
    assert value_before == -900 * WAD
    return value_before


def open_health(collateral, size, fill, price, imr=IMR, tiers=BASE_TIERS):
    """(value, mm, im) of an account that holds only the position `size` opened at `fill`, at the
    oracle price `price`: PerpEngine._health for one position without funding or socialised loss,
    from PositionMath.applyFill and MarginMath (no single library function computes it)."""
    _, open_notional, _ = position.apply_fill(0, 0, size, fill)
    value = collateral + margin.unrealized_pnl(size, open_notional, price)
    notional = margin.notional(size, price)
    mm = margin.maintenance_margin(notional, tiers)
    return value, mm, margin.initial_margin(notional, imr, mm)


def value_after_fill(collateral, size, open_notional, size_delta, fill, price):
    """Account value after a fill of `size_delta` at `fill` on a position (size, open_notional),
    at the oracle price `price`: PositionMath.applyFill's realised PnL added to the collateral,
    plus MarginMath.unrealizedPnl of what is left (no funding or socialised loss)."""
    new_size, new_open_notional, realized = position.apply_fill(size, open_notional, size_delta, fill)
    return collateral + realized + margin.unrealized_pnl(new_size, new_open_notional, price)
