"""PerpEngine revert paths: one test per custom error of every state-changing function and of the
views that can revert, each asserting the error AND all of its arguments (computed from the
engine's views in the same state or from the formulas of the libraries), plus the successful path
of every function (with its events) so that each check can fail.

`reverts` (tests/reverts.py) is stricter than `ape.reverts`: Ape does not decode errors raised by a nested
contract (the oracle router) and then silently skips the argument check, and it ignores argument
names it does not know. Here the error must match by signature and every argument must be given
and equal.

Four contract bugs this file found (a new vault with positions, the open-interest cap blocking
reductions, the vault trading through an isolated bucket, healthRange overflowing) are fixed; their
tests stay as regressions."""


import pytest

from simulator.chain.deploy import MarketSpec, deploy_system
from tests.conftest import BTC, ETH, USDC, WAD
from tests.reverts import _norm, events, expected_events, reverts, reverts_with_panic
from tests.invariants import check_invariants, registered_accounts

ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1
INT_MIN = -(2**255)
TOKEN_SCALE = 10**12  # USDC units -> WAD
BTC_PRICE = 100_000 * WAD
ETH_PRICE = 4_000 * WAD
IMR = WAD // 10
MMR = WAD // 20
MAX_IMPACT = WAD // 10
BAND = WAD // 100
BTC_DEPTH = 10_000_000 * WAD
HEARTBEAT = 3_600
IMPACT_AT_DEPTH = 2 * WAD // 100

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


# FIXED-POINT MIRRORS (contracts/libraries)


def mul_div_up(x, y, d):
    p = x * y
    return 0 if p == 0 else (p - 1) // d + 1


def wmul_up(x, y):
    return mul_div_up(x, y, WAD)


def wmul_down(x, y):
    return x * y // WAD


def s_wmul_down(x, y):
    return x * y // WAD if x >= 0 else -mul_div_up(-x, y, WAD)


def s_wmul_up(x, y):
    return mul_div_up(x, y, WAD) if x >= 0 else -((-x) * y // WAD)


def s_div_up(x, d):
    return -((-x) // d) if x <= 0 else (x - 1) // d + 1


def depth_fill(price, size, consumed, depth, max_impact=MAX_IMPACT):
    """DepthCurve.fill: (fillPrice, consumedAfter) or ("exhausted", impact)."""
    is_buy = size > 0
    q = wmul_up(abs(size), price)
    after = consumed + q if is_buy else consumed - q
    impact = 0 if after == 0 else (MAX_UINT if depth == 0 else mul_div_up(abs(after), IMPACT_AT_DEPTH, depth))
    if impact > max_impact:
        return "exhausted", impact
    mid = consumed + after
    if mid == 0:
        return price, after
    premium = mid > 0
    if premium == is_buy:
        avg = mul_div_up(abs(mid), IMPACT_AT_DEPTH, 2 * depth)
    else:
        avg = abs(mid) * IMPACT_AT_DEPTH // (2 * depth)
    factor = WAD + avg if premium else WAD - avg
    return (wmul_up(price, factor) if is_buy else wmul_down(price, factor)), after


def open_health(collateral, size, fill, price, imr=IMR, mmr=MMR, deduction=0):
    """(value, mm, im) of an account that holds only the position `size` opened at `fill`."""
    value = collateral + s_wmul_down(size, price) - s_wmul_up(size, fill)
    notional = wmul_up(abs(size), price)
    mm = wmul_up(notional, mmr) - deduction
    return value, mm, max(wmul_up(notional, imr), mm)


def params(**overrides):
    """MarketParams tuple: MarketSpec defaults, BTC depth, with `overrides` by field name."""
    base = dict(zip(FIELDS, MarketSpec("X", 1, depth2pct=10_000_000).params()))
    unknown = set(overrides) - set(FIELDS)
    assert not unknown, unknown
    base.update(overrides)
    return tuple(base[f] for f in FIELDS)


def current_params(engine, market_id, **overrides):
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


# FIXTURES


@pytest.fixture(scope="module", autouse=True)
def _session_fixtures_first(project, base_system, deployer, alice, bob, carol, vault_account):
    """Creates every broader-scoped fixture before the first test: Ape otherwise rebases its
    per-test snapshots when a later test first asks for one (slow, InvalidIsolationWarning)."""


@pytest.fixture
def engine(system):
    return system.engine


@pytest.fixture
def vault(system):
    return system.vault


def open_long(system, account, size, collateral_usd):
    system.fund(account, collateral_usd)
    return system.engine.openPosition(BTC, size, MAX_UINT, sender=account)


# THE HELPER ITSELF


def test_reverts_helper_is_strict(system, chain, engine, alice):
    """`reverts` fails on a wrong or missing argument, a wrong error, or no revert, on each path:
    errors Ape decodes, nested errors in a transaction, and errors of a view (eth_call)."""
    aid = cross_id(alice)
    with reverts(engine.InsufficientCollateral, accountId=aid, collateral=0, amount=5 * TOKEN_SCALE):
        engine.withdraw(5, sender=alice)
    for wrong in (
        dict(accountId=aid, collateral=0, amount=5),
        dict(accountId=aid, collateral=0),
        dict(accountId=aid, collateral=0, amount=5 * TOKEN_SCALE, extra=1),
    ):
        with pytest.raises(AssertionError):
            with reverts(engine.InsufficientCollateral, **wrong):
                engine.withdraw(5, sender=alice)
    with pytest.raises(AssertionError):
        with reverts(engine.ZeroAmount):
            engine.withdraw(5, sender=alice)
    with pytest.raises(AssertionError):
        with reverts(engine.ZeroAmount):
            engine.quote(BTC, WAD)  # does not revert
    with pytest.raises(AssertionError):
        with reverts(engine.UnknownMarket, marketId=0):
            engine.quote(BTC, 0)  # reverts ZeroAmount (a view: anvil's text form)
    with reverts(engine.ZeroAmount):
        engine.quote(BTC, 0)

    # Reverted transactions may be mined (fixed gas limit) or not (estimated): pin each one's time.
    updated_at = system.feeds[BTC].latestRoundData()[3]
    now = updated_at + HEARTBEAT + 1

    def stale(t):
        return dict(marketId=BTC, updatedAt=updated_at, nowTs=t, heartbeat=HEARTBEAT)

    chain.pending_timestamp = now
    with pytest.raises(AssertionError):
        with reverts(system.router.StalePrice, **stale(now + 1)):
            engine.accrueFunding(BTC, sender=alice)  # nested error in a transaction
    chain.pending_timestamp = now + 1
    with pytest.raises(AssertionError):
        with reverts(system.router.InvalidPrice, marketId=BTC, answer=0):
            engine.accrueFunding(BTC, sender=alice)
    chain.pending_timestamp = now + 2
    with reverts(system.router.StalePrice, **stale(now + 2)):
        engine.accrueFunding(BTC, sender=alice)
    chain.mine(timestamp=now + 3)
    with pytest.raises(AssertionError):
        with reverts(system.router.StalePrice, **stale(now + 2)):
            engine.quote(BTC, WAD)  # nested error in a view
    with reverts(system.router.StalePrice, **stale(now + 3)):
        engine.quote(BTC, WAD)


# CONSTRUCTOR


def test_constructor_rejects_token_with_more_than_18_decimals(system, project, deployer):
    # A PriceFeed answers decimals() like a token: 19 decimals cannot be scaled to WAD.
    fake_token = deployer.deploy(project.PriceFeed, 19, "not a token")
    with reverts(project.PerpEngine.InvalidParameter, name=b32("tokenDecimals"), value=19):
        deployer.deploy(project.PerpEngine, fake_token, system.router)
    engine = deployer.deploy(project.PerpEngine, system.usdc, system.router)
    assert engine.tokenScale() == TOKEN_SCALE
    assert engine.owner() == deployer.address


# transferOwnership


def test_transfer_ownership_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.transferOwnership(alice, sender=alice)


def test_transfer_ownership_rejects_zero_address(engine, deployer):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.transferOwnership(ZERO, sender=deployer)


def test_transfer_ownership_moves_owner(engine, deployer, alice):
    role = engine.OWNER_ROLE()
    receipt = engine.transferOwnership(alice, sender=deployer)
    assert events(receipt, engine.RoleSet) == expected_events(
        dict(role=role, account=deployer, granted=False), dict(role=role, account=alice, granted=True)
    )
    assert engine.owner() == alice.address
    with reverts(engine.Unauthorized, caller=deployer, role=role):
        engine.setRole(engine.OPERATOR_ROLE(), deployer, False, sender=deployer)
    engine.setRole(engine.OPERATOR_ROLE(), deployer, False, sender=alice)


# setRole


def test_set_role_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setRole(engine.OPERATOR_ROLE(), alice, True, sender=alice)


def test_set_role_grants_and_revokes_with_events(engine, deployer, alice):
    role = engine.MARKET_MAKER_ROLE()
    receipt = engine.setRole(role, alice, True, sender=deployer)
    assert events(receipt, engine.RoleSet) == expected_events(dict(role=role, account=alice, granted=True))
    assert engine.hasRole(role, alice)
    receipt = engine.setDepth(BTC, 5 * WAD, sender=alice)
    assert events(receipt, engine.DepthSet) == expected_events(dict(marketId=BTC, depth2pct=5 * WAD, by=alice))

    receipt = engine.setRole(role, alice, False, sender=deployer)
    assert events(receipt, engine.RoleSet) == expected_events(dict(role=role, account=alice, granted=False))
    assert not engine.hasRole(role, alice)
    with reverts(engine.Unauthorized, caller=alice, role=role):
        engine.setDepth(BTC, 5 * WAD, sender=alice)


# setVault


def test_set_vault_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setVault(alice, sender=alice)


def test_set_vault_rejects_zero_address(engine, deployer):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.setVault(ZERO, sender=deployer)


def test_set_vault_rejected_while_vault_holds_a_position(system, engine, deployer, alice, carol, vault):
    open_long(system, alice, WAD // 10, 100_000)
    assert engine.marketMaskOf(cross_id(vault)) == 1 << BTC
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.setVault(carol, sender=deployer)


def test_set_vault_allowed_again_once_vault_is_flat(system, engine, deployer, alice, carol, vault):
    open_long(system, alice, WAD // 10, 100_000)
    engine.openPosition(BTC, -(WAD // 10), 0, sender=alice)
    assert engine.marketMaskOf(cross_id(vault)) == 0
    receipt = engine.setVault(carol, sender=deployer)
    assert events(receipt, engine.VaultSet) == expected_events(dict(vault=carol))
    assert engine.vault() == carol.address


def test_set_vault_switches_counterparty(system, engine, deployer, bob, carol):
    system.fund(carol, 1_000_000)
    system.fund(bob, 100_000)
    engine.setVault(carol, sender=deployer)
    with reverts(engine.InvalidCounterparty, account=carol):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=carol)
    q = engine.quote(BTC, WAD)
    engine.openPosition(BTC, WAD, q, sender=bob)
    assert engine.getPosition(carol, BTC) == (-WAD, s_wmul_up(-WAD, q))
    assert engine.marketView(BTC).vaultSize == -WAD


def test_set_vault_rejects_new_vault_with_positions(system, chain, engine, deployer, alice, bob):
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.marketView(BTC).vaultSize == 0  # the vault holds nothing: the old-vault check passes
    snapshot = chain.snapshot()
    try:
        with reverts(engine.InvalidCounterparty, account=alice):
            engine.setVault(alice, sender=deployer)
    finally:
        chain.restore(snapshot)  # keep the fixture's invariant check meaningful


# createMarket

INVALID_PARAMS = [
    pytest.param(dict(imr=0), "imr", 0, id="imr-zero"),
    pytest.param(dict(imr=WAD + 1), "imr", WAD + 1, id="imr-above-one"),
    pytest.param(dict(mmr=IMR + 1), "mmr", IMR + 1, id="mmr-above-imr"),
    pytest.param(dict(liquidationFee=WAD), "liquidationFee", WAD, id="liquidationFee-one"),
    pytest.param(dict(keeperShare=WAD + 1), "keeperShare", WAD + 1, id="keeperShare-above-one"),
    pytest.param(dict(maxImpact=0), "maxImpact", 0, id="maxImpact-zero"),
    pytest.param(dict(maxImpact=WAD), "maxImpact", WAD, id="maxImpact-one"),
    pytest.param(dict(matchBand=WAD), "matchBand", WAD, id="matchBand-one"),
    pytest.param(dict(maxFundingRate=WAD + 1, skewScale=1), "maxFundingRate", WAD + 1, id="maxFundingRate-above-one"),
    pytest.param(dict(maxFundingRate=1, skewScale=0), "skewScale", 0, id="skewScale-zero-with-funding"),
]


def test_create_market_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.createMarket(b32("SOL"), params(), sender=alice)


@pytest.mark.parametrize("overrides,name,value", INVALID_PARAMS)
def test_create_market_invalid_parameter(engine, deployer, overrides, name, value):
    with reverts(engine.InvalidParameter, name=b32(name), value=value):
        engine.createMarket(b32("SOL"), params(**overrides), sender=deployer)


def test_create_market_accepts_every_boundary(engine, deployer):
    boundary = params(
        imr=WAD,
        mmr=WAD,
        liquidationFee=WAD - 1,
        keeperShare=WAD,
        depth2pct=0,
        maxImpact=WAD - 1,
        maxFundingRate=WAD,
        skewScale=1,
        matchBand=WAD - 1,
    )
    receipt = engine.createMarket(b32("SOL"), boundary, sender=deployer)
    assert events(receipt, engine.MarketCreated) == expected_events(dict(marketId=2, name=b32("SOL"), params=boundary))
    assert events(receipt, engine.TiersSet) == expected_events(dict(marketId=2, floors=[0], mmrs=[WAD]))
    assert engine.marketCount() == 3
    assert engine.marketName(2) == b32("SOL")
    assert _norm(engine.marketParams(2)) == _norm(boundary)
    assert _norm(engine.tiersOf(2)) == ((0,), (WAD,), (0,))


def test_create_market_too_many_markets(chain, engine, deployer):
    # markets.length lives in slot 3 (owner, vault, hasRole, markets); creating 254 markets would be slow.
    assert int.from_bytes(chain.provider.get_storage(engine.address, 3), "big") == 2
    try:
        chain.provider.set_storage(engine.address, 3, (255).to_bytes(32, "big"))
        receipt = engine.createMarket(b32("LAST"), params(), sender=deployer)
        assert [log["marketId"] for log in events(receipt, engine.MarketCreated)] == [255]
        assert engine.marketCount() == 256
        with reverts(engine.TooManyMarkets):
            engine.createMarket(b32("ONE MORE"), params(), sender=deployer)
    finally:
        chain.provider.set_storage(engine.address, 3, (2).to_bytes(32, "big"))
    assert engine.marketCount() == 2


def test_market_without_oracle_feed_cannot_trade(system, engine, deployer, alice):
    receipt = engine.createMarket(b32("SOL"), params(), sender=deployer)
    assert [log["marketId"] for log in events(receipt, engine.MarketCreated)] == [2]
    system.fund(alice, 10_000)
    with reverts(system.router.UnknownMarket, marketId=2):
        engine.openPosition(2, WAD, MAX_UINT, sender=alice)
    with reverts(system.router.UnknownMarket, marketId=2):
        engine.quote(2, WAD)


# setMarketParams


def test_set_market_params_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setMarketParams(BTC, params(), sender=alice)


def test_set_market_params_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setMarketParams(2, params(), sender=deployer)
    # the market check comes first
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setMarketParams(2, params(imr=0), sender=deployer)


def test_set_market_params_invalid_parameter(engine, deployer):
    # the same validation as createMarket (each field has its own createMarket test above)
    for case in INVALID_PARAMS:
        overrides, name, value = case.values
        with reverts(engine.InvalidParameter, name=b32(name), value=value):
            engine.setMarketParams(BTC, params(**overrides), sender=deployer)
    assert _norm(engine.marketParams(BTC)) == _norm(params())


def test_set_market_params_stale_price(system, chain, engine, deployer):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.setMarketParams(BTC, params(), sender=deployer)


def test_set_market_params_mmr_must_stay_below_next_tier(engine, deployer):
    engine.setTiers(BTC, [0, 1_000_000 * WAD], [MMR, WAD // 10], sender=deployer)
    with reverts(engine.InvalidTier, index=1, floor=1_000_000 * WAD, mmr=WAD // 10):
        engine.setMarketParams(BTC, params(mmr=WAD // 10), sender=deployer)


def test_set_market_params_updates_params_and_first_tier(engine, deployer):
    engine.setTiers(BTC, [0, 1_000_000 * WAD], [MMR, WAD // 10], sender=deployer)
    new = params(imr=WAD // 5, mmr=WAD // 25, maxOpenInterest=7 * WAD)
    receipt = engine.setMarketParams(BTC, new, sender=deployer)
    assert events(receipt, engine.MarketParamsSet) == expected_events(dict(marketId=BTC, params=new))
    assert events(receipt, engine.TiersSet) == expected_events(
        dict(marketId=BTC, floors=[0, 1_000_000 * WAD], mmrs=[WAD // 25, WAD // 10])
    )
    assert _norm(engine.marketParams(BTC)) == _norm(new)
    deduction = wmul_down(1_000_000 * WAD, WAD // 10 - WAD // 25)
    assert _norm(engine.tiersOf(BTC)) == ((0, 1_000_000 * WAD), (WAD // 25, WAD // 10), (0, deduction))


# setTiers

F = 1_000_000 * WAD
INVALID_TIERS = [
    pytest.param([0], [], (0, 0, 0), id="mmrs-empty"),
    pytest.param([], [MMR], (0, 0, MMR), id="floors-empty"),
    pytest.param([0], [MMR + 1], (0, 0, MMR + 1), id="mmr0-not-market-mmr"),
    pytest.param([0, F], [MMR], (0, 0, MMR), id="length-mismatch-floors"),
    pytest.param([0], [MMR, WAD // 10], (0, 0, MMR), id="length-mismatch-mmrs"),
    pytest.param([1, F], [MMR, WAD // 10], (0, 1, MMR), id="floor0-not-zero"),
    pytest.param([0, 0], [MMR, WAD // 10], (1, 0, WAD // 10), id="floor1-zero"),
    pytest.param([0, F, F], [MMR, WAD // 10, WAD // 5], (2, F, WAD // 5), id="floor-equal"),
    pytest.param([0, F, F - 1], [MMR, WAD // 10, WAD // 5], (2, F - 1, WAD // 5), id="floor-decreasing"),
    pytest.param([0, F], [MMR, MMR], (1, F, MMR), id="mmr-equal"),
    pytest.param([0, F, 2 * F], [MMR, WAD // 10, WAD // 10 - 1], (2, 2 * F, WAD // 10 - 1), id="mmr-decreasing"),
    pytest.param([0, F], [MMR, WAD], (1, F, WAD), id="mmr-one"),
    pytest.param([0, F], [MMR, WAD + 1], (1, F, WAD + 1), id="mmr-above-one"),
]


def test_set_tiers_only_owner(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OWNER_ROLE()):
        engine.setTiers(BTC, [0], [MMR], sender=alice)


def test_set_tiers_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.setTiers(2, [0], [MMR], sender=deployer)


@pytest.mark.parametrize("floors,mmrs,error", INVALID_TIERS)
def test_set_tiers_invalid_tier(engine, deployer, floors, mmrs, error):
    index, floor, mmr = error
    with reverts(engine.InvalidTier, index=index, floor=floor, mmr=mmr):
        engine.setTiers(BTC, floors, mmrs, sender=deployer)


def test_set_tiers_derives_deductions(engine, deployer):
    floors = [0, F, 5 * F, 6 * F]
    mmrs = [MMR, WAD * 75 // 1000, WAD // 10, WAD - 1]
    receipt = engine.setTiers(BTC, floors, mmrs, sender=deployer)
    assert events(receipt, engine.TiersSet) == expected_events(dict(marketId=BTC, floors=floors, mmrs=mmrs))
    deductions = [0]
    for k in range(1, len(floors)):
        deductions.append(deductions[-1] + wmul_down(floors[k], mmrs[k] - mmrs[k - 1]))
    assert _norm(engine.tiersOf(BTC)) == (tuple(floors), tuple(mmrs), tuple(deductions))
    assert deductions[1] == 25_000 * WAD


def test_tier_above_imr_raises_initial_margin(system, engine, deployer, alice):
    engine.setTiers(BTC, [0, F], [MMR, WAD // 5], sender=deployer)
    deduction = wmul_down(F, WAD // 5 - MMR)
    system.fund(alice, 250_000)
    size = 20 * WAD  # $2M notional: MM = 2M * 20% - 150k = 250k > IM 200k
    q = engine.quote(BTC, size)
    value, mm, im = open_health(250_000 * WAD, size, q, BTC_PRICE, mmr=WAD // 5, deduction=deduction)
    assert im == mm == 250_000 * WAD
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)


# setDepth


def test_set_depth_only_market_maker(engine, alice):
    with reverts(engine.Unauthorized, caller=alice, role=engine.MARKET_MAKER_ROLE()):
        engine.setDepth(BTC, WAD, sender=alice)


def test_set_depth_unknown_market(engine, deployer):
    with reverts(engine.UnknownMarket, marketId=5):
        engine.setDepth(5, WAD, sender=deployer)


def test_set_depth_sets_book_and_emits(engine, deployer):
    depth = 2_000_000 * WAD
    receipt = engine.setDepth(BTC, depth, sender=deployer)
    assert events(receipt, engine.DepthSet) == expected_events(dict(marketId=BTC, depth2pct=depth, by=deployer))
    assert engine.marketView(BTC).depth2pct == depth
    assert engine.marketParams(BTC).depth2pct == depth
    assert engine.quote(BTC, WAD) == depth_fill(BTC_PRICE, WAD, 0, depth)[0]


def test_depth_zero_means_no_book(system, engine, deployer, alice, bob):
    engine.setDepth(BTC, 0, sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.quote(BTC, WAD)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.openIsolatedPosition(BTC, -WAD, 0, sender=alice)
    # matched fills need no book
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.getPosition(alice, BTC) == (WAD, BTC_PRICE)


# deposit / depositFor


def test_deposit_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.deposit(0, sender=alice)


def test_deposit_without_allowance(system, engine, deployer, alice):
    system.usdc.mint(alice, 100 * USDC, sender=deployer)
    with reverts(system.usdc.InsufficientAllowance, owner=alice, spender=engine, allowance=0, needed=100 * USDC):
        engine.deposit(100 * USDC, sender=alice)


def test_deposit_without_balance(system, engine, alice):
    system.usdc.approve(engine, 100 * USDC, sender=alice)
    with reverts(system.usdc.InsufficientBalance, account=alice, balance=0, needed=100 * USDC):
        engine.deposit(100 * USDC, sender=alice)


def test_deposit_credits_and_emits(system, engine, deployer, alice):
    system.usdc.mint(alice, 300 * USDC, sender=deployer)
    system.usdc.approve(engine, 300 * USDC, sender=alice)
    count = engine.accountCount()
    receipt = engine.deposit(100 * USDC, sender=alice)
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=cross_id(alice), index=count))
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(alice), "from": alice, "amount": 100 * USDC}
    )
    receipt = engine.deposit(200 * USDC, sender=alice)
    assert events(receipt, engine.AccountRegistered) == []
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(alice), "from": alice, "amount": 200 * USDC}
    )
    assert engine.collateralOf(cross_id(alice)) == 300 * USDC * TOKEN_SCALE
    assert engine.accountCount() == count + 1
    assert system.usdc.balanceOf(alice) == 0


def test_deposit_for_zero_address(engine, alice):
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.depositFor(ZERO, 5 * USDC, sender=alice)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.depositFor(ZERO, 0, sender=alice)


def test_deposit_for_zero_amount(engine, alice, bob):
    with reverts(engine.ZeroAmount):
        engine.depositFor(bob, 0, sender=alice)


def test_deposit_for_credits_the_beneficiary(system, engine, deployer, alice, bob):
    system.usdc.mint(alice, 50 * USDC, sender=deployer)
    system.usdc.approve(engine, 50 * USDC, sender=alice)
    receipt = engine.depositFor(bob, 50 * USDC, sender=alice)
    assert events(receipt, engine.Deposit) == expected_events(
        {"accountId": cross_id(bob), "from": alice, "amount": 50 * USDC}
    )
    assert engine.collateralOf(cross_id(bob)) == 50 * USDC * TOKEN_SCALE
    assert engine.collateralOf(cross_id(alice)) == 0


# withdraw


def test_withdraw_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.withdraw(0, sender=alice)


def test_withdraw_without_account(engine, alice):
    with reverts(engine.InsufficientCollateral, accountId=cross_id(alice), collateral=0, amount=5 * USDC * TOKEN_SCALE):
        engine.withdraw(5 * USDC, sender=alice)


def test_withdraw_above_collateral(system, engine, alice):
    system.fund(alice, 1_000)
    amount = 1_000 * USDC + 1
    with reverts(
        engine.InsufficientCollateral,
        accountId=cross_id(alice),
        collateral=1_000 * WAD,
        amount=amount * TOKEN_SCALE,
    ):
        engine.withdraw(amount, sender=alice)


def test_withdraw_breaking_initial_margin(system, engine, alice):
    open_long(system, alice, WAD // 2, 10_000)
    value, _, im = engine.health(cross_id(alice))
    free = (value - im) // TOKEN_SCALE
    bad = free + 1
    with reverts(
        engine.InsufficientMargin,
        accountId=cross_id(alice),
        accountValue=value - bad * TOKEN_SCALE,
        initialMargin=im,
    ):
        engine.withdraw(bad, sender=alice)
    engine.withdraw(free, sender=alice)  # the largest amount that keeps AV >= IM
    assert engine.health(cross_id(alice))[0] == value - free * TOKEN_SCALE


def test_withdraw_with_position_on_stale_price(system, chain, engine, alice):
    open_long(system, alice, WAD // 10, 10_000)
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.withdraw(1 * USDC, sender=alice)


def test_withdraw_without_position_ignores_stale_price(system, chain, engine, alice):
    system.fund(alice, 1_000)
    make_stale(system, chain, BTC)
    engine.withdraw(1_000 * USDC, sender=alice)
    assert engine.collateralOf(cross_id(alice)) == 0


def test_withdraw_pays_out_and_emits(system, engine, alice):
    system.fund(alice, 1_000)
    receipt = engine.withdraw(400 * USDC, sender=alice)
    assert events(receipt, engine.Withdrawal) == expected_events(
        dict(accountId=cross_id(alice), to=alice, amount=400 * USDC)
    )
    assert system.usdc.balanceOf(alice) == 400 * USDC
    assert engine.collateralOf(cross_id(alice)) == 600 * WAD


# transferMargin


def test_transfer_margin_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=7):
        engine.transferMargin(7, WAD, sender=alice)
    with reverts(engine.UnknownMarket, marketId=7):
        engine.transferMargin(7, 0, sender=alice)


def test_transfer_margin_zero(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.transferMargin(BTC, 0, sender=alice)


def test_transfer_margin_in_above_cross_collateral(system, engine, alice):
    system.fund(alice, 100)
    with reverts(engine.InsufficientCollateral, accountId=cross_id(alice), collateral=100 * WAD, amount=100 * WAD + 1):
        engine.transferMargin(BTC, 100 * WAD + 1, sender=alice)


def test_transfer_margin_out_above_isolated_collateral(system, engine, alice):
    system.fund(alice, 100)
    engine.transferMargin(BTC, 10 * WAD, sender=alice)
    with reverts(
        engine.InsufficientCollateral, accountId=iso_id(alice, BTC), collateral=10 * WAD, amount=10 * WAD + 1
    ):
        engine.transferMargin(BTC, -(10 * WAD + 1), sender=alice)
    with reverts(engine.InsufficientCollateral, accountId=iso_id(alice, ETH), collateral=0, amount=WAD):
        engine.transferMargin(ETH, -WAD, sender=alice)


def test_transfer_margin_in_breaking_cross_margin(system, engine, alice):
    open_long(system, alice, WAD // 2, 10_000)
    value, _, im = engine.health(cross_id(alice))
    amount = value - im + 1
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=im - 1, initialMargin=im):
        engine.transferMargin(ETH, amount, sender=alice)
    engine.transferMargin(ETH, amount - 1, sender=alice)
    assert engine.health(cross_id(alice))[0] == im
    assert engine.collateralOf(iso_id(alice, ETH)) == amount - 1


def test_transfer_margin_out_breaking_isolated_margin(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 10_000 * WAD, sender=alice)
    engine.openIsolatedPosition(BTC, WAD // 2, MAX_UINT, sender=alice)
    bucket = iso_id(alice, BTC)
    value, _, im = engine.health(bucket)
    amount = value - im + 1
    with reverts(engine.InsufficientMargin, accountId=bucket, accountValue=im - 1, initialMargin=im):
        engine.transferMargin(BTC, -amount, sender=alice)
    engine.transferMargin(BTC, -(amount - 1), sender=alice)
    assert engine.health(bucket)[0] == im


def test_transfer_margin_int_min_reverts(system, engine, alice):
    # abs(type(int256).min) overflows: a panic rather than a custom error.
    system.fund(alice, 100)
    with reverts_with_panic(0x11):
        engine.transferMargin(BTC, INT_MIN, sender=alice)


def test_transfer_margin_both_directions_with_events(system, engine, alice):
    system.fund(alice, 1_000)
    bucket = iso_id(alice, BTC)
    assert engine.isolatedAccountId(alice, BTC) == bucket
    count = engine.accountCount()
    receipt = engine.transferMargin(BTC, 300 * WAD, sender=alice)
    assert events(receipt, engine.MarginTransferred) == expected_events(
        dict(owner=alice, marketId=BTC, amount=300 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=bucket, index=count))
    receipt = engine.transferMargin(BTC, -100 * WAD, sender=alice)
    assert events(receipt, engine.MarginTransferred) == expected_events(
        dict(owner=alice, marketId=BTC, amount=-100 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == []
    assert engine.collateralOf(bucket) == 200 * WAD
    assert engine.collateralOf(cross_id(alice)) == 800 * WAD


# openPosition


def test_open_position_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.openPosition(2, WAD, MAX_UINT, sender=alice)


def test_open_position_zero_size(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.openPosition(BTC, 0, MAX_UINT, sender=alice)


def test_open_position_vault_cannot_take(engine, vault):
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=vault)


def test_open_position_without_vault(system, project, deployer, alice):
    engine = deployer.deploy(project.PerpEngine, system.usdc, system.router)
    engine.createMarket(b32("BTC"), params(), sender=deployer)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)
    with reverts(engine.InvalidCounterparty, account=ZERO):
        engine.openIsolatedPosition(BTC, WAD, MAX_UINT, sender=alice)


def test_quote_matches_depth_curve(engine):
    for size in (WAD, -WAD, 7 * WAD // 3, -(10**9)):
        assert engine.quote(BTC, size) == depth_fill(BTC_PRICE, size, 0, BTC_DEPTH)[0]
    assert engine.quote(ETH, 5 * WAD) == depth_fill(ETH_PRICE, 5 * WAD, 0, 5_000_000 * WAD)[0]


def test_open_position_buy_price_limit(system, engine, alice):
    system.fund(alice, 100_000)
    size = 2 * WAD
    q = engine.quote(BTC, size)
    assert q > BTC_PRICE
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q - 1):
        engine.openPosition(BTC, size, q - 1, sender=alice)
    receipt = engine.openPosition(BTC, size, q, sender=alice)  # a limit equal to the fill is met
    assert [log["fillPrice"] for log in events(receipt, engine.PositionChanged)] == [q, q]


def test_open_position_sell_price_limit(system, engine, alice):
    system.fund(alice, 100_000)
    size = -2 * WAD
    q = engine.quote(BTC, size)
    assert q < BTC_PRICE
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q + 1):
        engine.openPosition(BTC, size, q + 1, sender=alice)
    receipt = engine.openPosition(BTC, size, q, sender=alice)
    assert [log["fillPrice"] for log in events(receipt, engine.PositionChanged)] == [q, q]


def test_open_position_insufficient_margin(system, engine, alice):
    system.fund(alice, 1_000)
    size = WAD // 10  # $10k notional needs $1,000 of margin plus the spread
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, size, q, BTC_PRICE)
    assert value < im
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)


def test_open_position_flip_needs_initial_margin(system, chain, engine, alice):
    open_long(system, alice, WAD // 10, 1_100)
    chain.mine()  # quote in a block of its own: the open's book consumption stays in its block
    size = -(WAD // 10) - WAD // 5  # flips to short 0.2: an increase
    q = engine.quote(BTC, size)
    _, open_notional = engine.getPosition(alice, BTC)
    closed = WAD // 10
    realized = s_wmul_down(closed, q) - open_notional
    collateral = engine.collateralOf(cross_id(alice)) + realized
    value, _, im = open_health(collateral, -(WAD // 5), q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=value, initialMargin=im):
        engine.openPosition(BTC, size, 0, sender=alice)


def test_open_position_success_events_and_health(system, engine, alice, vault):
    system.fund(alice, 10_000)
    size = WAD // 2
    q = engine.quote(BTC, size)
    receipt = engine.openPosition(BTC, size, q, sender=alice)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(
            accountId=cross_id(alice),
            marketId=BTC,
            sizeDelta=size,
            fillPrice=q,
            newSize=size,
            newOpenNotional=s_wmul_up(size, q),
            realizedPnl=0,
        ),
        dict(
            accountId=cross_id(vault),
            marketId=BTC,
            sizeDelta=-size,
            fillPrice=q,
            newSize=-size,
            newOpenNotional=s_wmul_up(-size, q),
            realizedPnl=0,
        ),
    )
    assert engine.getPosition(alice, BTC) == (size, s_wmul_up(size, q))
    assert engine.health(cross_id(alice)) == open_health(10_000 * WAD, size, q, BTC_PRICE)
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (size, 0, -size)
    assert engine.marketMaskOf(cross_id(alice)) == 1 << BTC


def test_open_position_book_exhausted(engine, alice):
    # edge = depth * maxImpact / 2% = $50M of notional
    for size in (501 * WAD, -501 * WAD):
        impact = mul_div_up(501 * BTC_PRICE, IMPACT_AT_DEPTH, BTC_DEPTH)
        with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
            engine.openPosition(BTC, size, MAX_UINT if size > 0 else 0, sender=alice)
        with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
            engine.quote(BTC, size)
    assert engine.quote(BTC, 500 * WAD) == depth_fill(BTC_PRICE, 500 * WAD, 0, BTC_DEPTH)[0]  # the last unit


def test_open_position_open_interest_cap(system, engine, deployer, alice, bob):
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=3 * WAD // 2, cap=WAD):
        engine.openPosition(BTC, 3 * WAD // 2, MAX_UINT, sender=alice)
    engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)  # exactly the cap
    engine.openPosition(BTC, -WAD, 0, sender=bob)  # the short side has its own cap
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=WAD + 1, cap=WAD):
        engine.openPosition(BTC, -1, 0, sender=bob)
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest) == (WAD, WAD)


def test_open_interest_cap_does_not_block_reductions(system, engine, deployer, alice):
    open_long(system, alice, 2 * WAD, 100_000)
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    engine.openPosition(BTC, -(WAD // 2), 0, sender=alice)
    assert engine.getPosition(alice, BTC)[0] == 3 * WAD // 2


def test_open_position_stale_price(system, chain, engine, alice):
    system.fund(alice, 10_000)
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)
    # a fresh answer makes the market tradable again
    system.set_price(BTC, 100_000)
    engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)


def test_stale_price_of_another_held_market_blocks_trading(system, chain, engine, alice):
    system.fund(alice, 10_000)
    engine.openPosition(ETH, WAD, MAX_UINT, sender=alice)
    eth_updated_at = system.feeds[ETH].latestRoundData()[3]
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 1
    system.feeds[BTC].submit(100_000 * 10**8, sender=system.deployer)  # BTC fresh, ETH stale
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 2
    with reverts(
        system.router.StalePrice, marketId=ETH, updatedAt=eth_updated_at, nowTs=eth_updated_at + HEARTBEAT + 2,
        heartbeat=HEARTBEAT,
    ):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)


def test_stale_price_of_a_vault_market_blocks_vault_increases(system, chain, engine, alice, bob):
    """The vault's capacity check values all its markets: a stale ETH price stops every trade that
    grows the vault's exposure, in BTC too, even for a trader without ETH."""
    system.fund(alice, 10_000)
    system.fund(bob, 10_000)
    engine.openPosition(ETH, WAD, MAX_UINT, sender=alice)
    eth_updated_at = system.feeds[ETH].latestRoundData()[3]
    chain.pending_timestamp = eth_updated_at + HEARTBEAT + 1
    system.feeds[BTC].submit(100_000 * 10**8, sender=system.deployer)
    now = eth_updated_at + HEARTBEAT + 2
    chain.pending_timestamp = now
    with reverts(system.router.StalePrice, marketId=ETH, updatedAt=eth_updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=bob)
    system.set_price(ETH, 4_000)
    engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=bob)
    assert engine.getPosition(bob, BTC)[0] == WAD // 100


@pytest.mark.parametrize("answer", [0, -1])
def test_open_position_non_positive_price(system, engine, alice, answer):
    system.fund(alice, 10_000)
    system.set_price(BTC, answer)
    with reverts(system.router.InvalidPrice, marketId=BTC, answer=answer * 10**8):
        engine.openPosition(BTC, WAD // 100, MAX_UINT, sender=alice)
    with reverts(system.router.InvalidPrice, marketId=BTC, answer=answer * 10**8):
        engine.quote(BTC, WAD)


def test_trades_respect_circuit_breaker(project, chain, system, deployer, vault_account, alice):
    spec = MarketSpec("BTC", 100_000, depth2pct=10_000_000, max_deviation="0.1", cooldown=600)
    variant = deploy_system(project, deployer, vault_account, [spec])
    engine, router = variant.engine, variant.router
    variant.fund(alice, 100_000)
    variant.feeds[BTC].submit(120_000 * 10**8, sender=deployer)  # +20%, not yet recorded by update
    with reverts(router.DeviationUnconfirmed, marketId=BTC, lastAccepted=BTC_PRICE, answer=120_000 * WAD):
        engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    receipt = router.update(BTC, sender=deployer)
    until = block_time(chain, receipt) + 600
    with reverts(router.BreakerTripped, marketId=BTC, until=until):
        engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    with reverts(router.BreakerTripped, marketId=BTC, until=until):
        engine.settleMatchedFill(alice, deployer, BTC, WAD, 120_000 * WAD, sender=deployer)
    chain.pending_timestamp = until
    receipt = engine.openPosition(BTC, WAD // 10, MAX_UINT, sender=alice)
    fills = [log["fillPrice"] for log in events(receipt, engine.PositionChanged)]
    assert fills[0] == depth_fill(120_000 * WAD, WAD // 10, 0, BTC_DEPTH)[0]
    check_invariants(variant)



def test_vault_capacity_exceeded(project, system, deployer, vault_account, alice):
    variant = deploy_system(
        project, deployer, vault_account, [MarketSpec("BTC", 100_000, depth2pct=10_000_000)], vault_collateral_usd=1_000
    )
    engine = variant.engine
    variant.fund(alice, 100_000)
    size = WAD // 5  # the vault takes -0.2 BTC: IM $2,000 > its $1,000
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, -size, q, BTC_PRICE)
    with reverts(engine.VaultCapacityExceeded, vaultValue=value, vaultInitialMargin=im):
        engine.openPosition(BTC, size, MAX_UINT, sender=alice)
    engine.openPosition(BTC, WAD // 20, MAX_UINT, sender=alice)  # IM $500: within capacity
    assert engine.marketView(BTC).vaultSize == -(WAD // 20)
    check_invariants(variant)


# openIsolatedPosition


def test_open_isolated_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=3):
        engine.openIsolatedPosition(3, WAD, MAX_UINT, sender=alice)


def test_open_isolated_zero_size(engine, alice):
    with reverts(engine.ZeroAmount):
        engine.openIsolatedPosition(BTC, 0, MAX_UINT, sender=alice)


def test_open_isolated_ignores_cross_collateral(system, engine, alice):
    system.fund(alice, 1_000_000)
    size = WAD // 10
    q = engine.quote(BTC, size)
    value, _, im = open_health(0, size, q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=iso_id(alice, BTC), accountValue=value, initialMargin=im):
        engine.openIsolatedPosition(BTC, size, MAX_UINT, sender=alice)


def test_open_isolated_insufficient_margin(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 1_000 * WAD, sender=alice)
    size = -(WAD // 10)
    q = engine.quote(BTC, size)
    value, _, im = open_health(1_000 * WAD, size, q, BTC_PRICE)
    with reverts(engine.InsufficientMargin, accountId=iso_id(alice, BTC), accountValue=value, initialMargin=im):
        engine.openIsolatedPosition(BTC, size, 0, sender=alice)


def test_open_isolated_price_limit(system, engine, alice):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 10_000 * WAD, sender=alice)
    q = engine.quote(BTC, -WAD // 2)
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q + 1):
        engine.openIsolatedPosition(BTC, -WAD // 2, q + 1, sender=alice)
    q = engine.quote(BTC, WAD // 2)
    with reverts(engine.PriceLimitExceeded, marketId=BTC, fillPrice=q, priceLimit=q - 1):
        engine.openIsolatedPosition(BTC, WAD // 2, q - 1, sender=alice)


def test_open_isolated_success(system, engine, alice, vault):
    system.fund(alice, 10_000)
    engine.transferMargin(BTC, 2_000 * WAD, sender=alice)
    bucket = iso_id(alice, BTC)
    size = WAD // 10
    q = engine.quote(BTC, size)
    receipt = engine.openIsolatedPosition(BTC, size, q, sender=alice)
    assert events(receipt, engine.PositionChanged)[0] == expected_events(
        dict(
            accountId=bucket,
            marketId=BTC,
            sizeDelta=size,
            fillPrice=q,
            newSize=size,
            newOpenNotional=s_wmul_up(size, q),
            realizedPnl=0,
        )
    )[0]
    assert engine.positionOf(bucket, BTC) == (size, s_wmul_up(size, q), 0)
    assert engine.getPosition(alice, BTC) == (0, 0)  # the cross account is untouched
    assert engine.health(bucket) == open_health(2_000 * WAD, size, q, BTC_PRICE)
    assert engine.health(cross_id(alice)) == (8_000 * WAD, 0, 0)
    assert engine.marketView(BTC).vaultSize == -size


def test_vault_cannot_take_through_isolated_bucket(engine, vault):
    engine.transferMargin(BTC, 1_000_000 * WAD, sender=vault)
    with reverts(engine.InvalidCounterparty, account=vault):
        engine.openIsolatedPosition(BTC, WAD, MAX_UINT, sender=vault)


# settleMatchedFill


def test_matched_fill_only_operator(engine, alice, bob):
    with reverts(engine.Unauthorized, caller=alice, role=engine.OPERATOR_ROLE()):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=alice)


def test_matched_fill_unknown_market(engine, deployer, alice, bob):
    with reverts(engine.UnknownMarket, marketId=9):
        engine.settleMatchedFill(alice, bob, 9, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_zero_size(engine, deployer, alice, bob):
    with reverts(engine.ZeroAmount):
        engine.settleMatchedFill(alice, bob, BTC, 0, BTC_PRICE, sender=deployer)


@pytest.mark.parametrize(
    "buyer,seller,culprit",
    [
        ("vault", "bob", "vault"),
        ("alice", "vault", "vault"),
        ("alice", "alice", "alice"),
        ("zero", "bob", "zero"),
        ("alice", "zero", "zero"),
    ],
)
def test_matched_fill_invalid_counterparty(engine, deployer, alice, bob, vault, buyer, seller, culprit):
    who = {"vault": vault.address, "alice": alice.address, "bob": bob.address, "zero": ZERO}
    with reverts(engine.InvalidCounterparty, account=who[culprit]):
        engine.settleMatchedFill(who[buyer], who[seller], BTC, WAD, BTC_PRICE, sender=deployer)


@pytest.mark.parametrize("side", [1, -1])
def test_matched_fill_price_outside_band(system, engine, deployer, alice, bob, side):
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    edge = BTC_PRICE + side * BTC_PRICE // 100  # exactly 1% away: inside
    with reverts(engine.PriceOutsideBand, marketId=BTC, price=edge + side, oraclePrice=BTC_PRICE, band=BAND):
        engine.settleMatchedFill(alice, bob, BTC, WAD, edge + side, sender=deployer)
    engine.settleMatchedFill(alice, bob, BTC, WAD, edge, sender=deployer)
    assert engine.getPosition(alice, BTC) == (WAD, edge)


def test_matched_fill_zero_price(engine, deployer, alice, bob):
    with reverts(engine.PriceOutsideBand, marketId=BTC, price=0, oraclePrice=BTC_PRICE, band=BAND):
        engine.settleMatchedFill(alice, bob, BTC, WAD, 0, sender=deployer)


def test_matched_fill_buyer_insufficient_margin(system, engine, deployer, alice, bob):
    system.fund(alice, 100)
    system.fund(bob, 100_000)
    with reverts(engine.InsufficientMargin, accountId=cross_id(alice), accountValue=100 * WAD, initialMargin=10_000 * WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_seller_insufficient_margin(system, engine, deployer, alice, bob):
    system.fund(alice, 100_000)
    system.fund(bob, 10_000)
    price = BTC_PRICE - BTC_PRICE // 200  # the seller sells 0.5% under the oracle
    value = 10_000 * WAD + s_wmul_down(-WAD, BTC_PRICE) - s_wmul_up(-WAD, price)
    with reverts(engine.InsufficientMargin, accountId=cross_id(bob), accountValue=value, initialMargin=10_000 * WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD, price, sender=deployer)


def test_matched_fill_open_interest_cap(system, engine, deployer, alice, bob):
    engine.setMarketParams(BTC, current_params(engine, BTC, maxOpenInterest=WAD), sender=deployer)
    system.fund(alice, 100_000)
    system.fund(bob, 100_000)
    with reverts(engine.OpenInterestCapExceeded, marketId=BTC, openInterest=WAD + 1, cap=WAD):
        engine.settleMatchedFill(alice, bob, BTC, WAD + 1, BTC_PRICE, sender=deployer)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_size_too_large_for_int(engine, deployer, alice, bob):
    with reverts(engine.IntOverflow, value=2**255):
        engine.settleMatchedFill(alice, bob, BTC, 2**255, BTC_PRICE, sender=deployer)


def test_matched_fill_stale_price(system, chain, engine, deployer, alice, bob):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)


def test_matched_fill_success(system, engine, deployer, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    price = BTC_PRICE + 300 * WAD
    receipt = engine.settleMatchedFill(alice, bob, BTC, WAD, price, sender=deployer)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, sizeDelta=WAD, fillPrice=price, newSize=WAD,
             newOpenNotional=price, realizedPnl=0),
        dict(accountId=cross_id(bob), marketId=BTC, sizeDelta=-WAD, fillPrice=price, newSize=-WAD,
             newOpenNotional=-price, realizedPnl=0),
    )
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize, view.bookConsumed) == (WAD, WAD, 0, 0)
    assert engine.accountValue(alice) == 20_000 * WAD - 300 * WAD
    assert engine.accountValue(bob) == 20_000 * WAD + 300 * WAD


# WorsensBadDebt


def _underwater_long(system, engine, deployer, alice, bob):
    """alice long 1 BTC at $100k with $10,100, then BTC at $89k: value -$900."""
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 89_000)
    value_before = engine.accountValue(alice)
    assert value_before == -900 * WAD
    return value_before


def _value_after_sell(collateral, size, open_notional, sold, fill, price):
    released = mul_div_up(open_notional, sold, size)
    realized = s_wmul_down(sold, fill) - released
    rest = size - sold
    return collateral + realized + s_wmul_down(rest, price) - (open_notional - released)


def test_reduction_worsening_bad_debt_matched(system, engine, deployer, alice, bob):
    before = _underwater_long(system, engine, deployer, alice, bob)
    price = 89_000 * WAD * 995 // 1000
    after = _value_after_sell(10_100 * WAD, WAD, BTC_PRICE, WAD // 2, price, 89_000 * WAD)
    assert after == -1_122_500 * WAD // 1000
    with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
        engine.settleMatchedFill(bob, alice, BTC, WAD // 2, price, sender=deployer)
    # a reduction above the oracle price improves the account: allowed
    better = 89_000 * WAD * 1005 // 1000
    engine.settleMatchedFill(bob, alice, BTC, WAD // 2, better, sender=deployer)
    assert engine.accountValue(alice) == _value_after_sell(10_100 * WAD, WAD, BTC_PRICE, WAD // 2, better, 89_000 * WAD)
    assert engine.accountValue(alice) > before


def test_reduction_worsening_bad_debt_taker(system, engine, deployer, alice, bob):
    before = _underwater_long(system, engine, deployer, alice, bob)
    for sold in (WAD // 2, WAD):  # partial and full close both cross the spread
        q = engine.quote(BTC, -sold)
        after = _value_after_sell(10_100 * WAD, WAD, BTC_PRICE, sold, q, 89_000 * WAD)
        assert after < before
        with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
            engine.openPosition(BTC, -sold, 0, sender=alice)


def test_reduction_creating_bad_debt_reverts(system, engine, deployer, alice, bob):
    """Questionable: the NatSpec says a reduction reverts only if it worsens an account ALREADY
    below zero; the code also reverts when a solvent account (value +100) would end below zero."""
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 90_000)
    before = engine.accountValue(alice)
    assert before == 100 * WAD
    price = 89_200 * WAD
    after = _value_after_sell(10_100 * WAD, WAD, BTC_PRICE, WAD // 2, price, 90_000 * WAD)
    assert after == -300 * WAD
    with reverts(engine.WorsensBadDebt, accountId=cross_id(alice), valueBefore=before, valueAfter=after):
        engine.settleMatchedFill(bob, alice, BTC, WAD // 2, price, sender=deployer)


def test_reduction_below_initial_margin_is_allowed(system, engine, deployer, alice, bob):
    system.fund(alice, 10_100)
    system.fund(bob, 1_000_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    system.set_price(BTC, 95_000)
    value, _, im = engine.health(cross_id(alice))
    assert 0 <= value < im
    q = engine.quote(BTC, -(WAD // 2))
    engine.openPosition(BTC, -(WAD // 2), q, sender=alice)
    expected = _value_after_sell(10_100 * WAD, WAD, BTC_PRICE, WAD // 2, q, 95_000 * WAD)
    assert engine.accountValue(alice) == expected
    assert engine.getPosition(alice, BTC)[0] == WAD // 2


# accrueFunding / settleFunding

MAX_FUNDING_RATE = 10**12  # per second, WAD fraction
SKEW_SCALE = 10 * WAD


def _with_funding(system, engine, deployer, alice):
    """Funding on BTC; alice long 1 BTC against the vault (skew +1: rate = maxRate / 10)."""
    engine.setMarketParams(
        BTC, current_params(engine, BTC, maxFundingRate=MAX_FUNDING_RATE, skewScale=SKEW_SCALE), sender=deployer
    )
    system.fund(alice, 100_000)
    return engine.openPosition(BTC, WAD, MAX_UINT, sender=alice)


def test_accrue_funding_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.accrueFunding(2, sender=alice)


def test_accrue_funding_stale_price(system, chain, engine, alice):
    updated_at, now = make_stale(system, chain, ETH)
    with reverts(system.router.StalePrice, marketId=ETH, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.accrueFunding(ETH, sender=alice)


@pytest.mark.parametrize("answer", [0, -5])
def test_accrue_funding_invalid_price(system, engine, alice, answer):
    system.set_price(ETH, answer)
    with reverts(system.router.InvalidPrice, marketId=ETH, answer=answer * 10**8):
        engine.accrueFunding(ETH, sender=alice)


def test_accrue_funding_success(system, chain, engine, deployer, alice):
    opened = _with_funding(system, engine, deployer, alice)
    rate = MAX_FUNDING_RATE // 10
    assert engine.marketView(BTC).fundingRate == rate
    start_index = engine.marketView(BTC).fundingIndex
    chain.pending_timestamp = block_time(chain, opened) + 100
    receipt = engine.accrueFunding(BTC, sender=alice)
    index = start_index + s_wmul_down(rate, BTC_PRICE) * 100
    assert events(receipt, engine.FundingAccrued) == expected_events(dict(marketId=BTC, index=index, rate=rate))
    assert engine.marketView(BTC).fundingIndex == index == 10**18


def test_settle_funding_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.settleFunding(cross_id(alice), 2, sender=alice)


def test_settle_funding_stale_price(system, chain, engine, alice):
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        engine.settleFunding(cross_id(alice), BTC, sender=alice)


def test_settle_funding_success(system, chain, engine, deployer, alice, bob, vault):
    opened = _with_funding(system, engine, deployer, alice)
    chain.pending_timestamp = block_time(chain, opened) + 1_000
    collateral = engine.collateralOf(cross_id(alice))
    last = engine.positionOf(cross_id(alice), BTC)[2]
    receipt = engine.settleFunding(cross_id(alice), BTC, sender=bob)
    index = engine.marketView(BTC).fundingIndex
    owed = s_div_up(WAD * (index - last), WAD)
    assert owed > 0
    assert events(receipt, engine.FundingSettled) == expected_events(dict(accountId=cross_id(alice), marketId=BTC, amount=owed))
    assert engine.collateralOf(cross_id(alice)) == collateral - owed
    assert engine.positionOf(cross_id(alice), BTC)[2] == index

    # the vault (short) receives
    vault_last = engine.positionOf(cross_id(vault), BTC)[2]
    receipt = engine.settleFunding(cross_id(vault), BTC, sender=bob)
    index = engine.marketView(BTC).fundingIndex
    received = s_div_up(-WAD * (index - vault_last), WAD)
    assert received < 0
    assert events(receipt, engine.FundingSettled) == expected_events(
        dict(accountId=cross_id(vault), marketId=BTC, amount=received)
    )

    # an account without a position settles nothing
    chain.pending_timestamp = block_time(chain, receipt) + 1
    receipt = engine.settleFunding(cross_id(bob), BTC, sender=bob)
    assert events(receipt, engine.FundingSettled) == []
    assert len(events(receipt, engine.FundingAccrued)) == 1


# VIEWS


def test_market_views_unknown_market(engine):
    for view in (engine.marketParams, engine.marketView, engine.marketName, engine.tiersOf):
        with reverts(engine.UnknownMarket, marketId=2):
            view(2)
        assert view(ETH) is not None


def test_quote_reverts(system, chain, engine):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.quote(2, WAD)
    with reverts(engine.ZeroAmount):
        engine.quote(BTC, 0)
    updated_at = system.feeds[BTC].latestRoundData()[3]
    chain.mine(timestamp=updated_at + HEARTBEAT + 1)  # views run at the latest block
    with reverts(
        system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=updated_at + HEARTBEAT + 1, heartbeat=HEARTBEAT
    ):
        engine.quote(BTC, WAD)


def test_health_views_revert_on_stale_position_price(system, chain, engine, alice, bob):
    open_long(system, alice, WAD // 10, 10_000)
    system.fund(bob, 1_000)
    updated_at = system.feeds[BTC].latestRoundData()[3]
    now = updated_at + HEARTBEAT + 1
    chain.mine(timestamp=now)
    for call in (
        lambda: engine.accountValue(alice),
        lambda: engine.health(cross_id(alice)),
        lambda: engine.isLiquidatable(alice),
    ):
        with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
            call()
    assert engine.accountValue(bob) == 1_000 * WAD  # no position: no price needed


def test_health_range_with_max_count(system, engine):
    ids, values, mms = engine.healthRange(1, MAX_UINT)
    assert list(ids) == registered_accounts(engine)[1:]


# INSURANCE FUND AND LIQUIDATION HOOKS (LIQUIDATOR_ROLE: the liquidation engine)


@pytest.fixture
def liquidator(engine, deployer):
    """The deployer acts as the liquidation engine, so the hooks can be called directly."""
    engine.setRole(engine.LIQUIDATOR_ROLE(), deployer, True, sender=deployer)
    return deployer


def test_deposit_insurance_zero(engine, deployer):
    with reverts(engine.ZeroAmount):
        engine.depositInsurance(0, sender=deployer)


def test_deposit_insurance_without_allowance(system, engine, deployer, alice):
    system.usdc.mint(alice, 10 * USDC, sender=deployer)
    with reverts(system.usdc.InsufficientAllowance, owner=alice, spender=engine, allowance=0, needed=10 * USDC):
        engine.depositInsurance(10 * USDC, sender=alice)


def test_set_role_cannot_grant_ownership(engine, deployer, alice):
    role = engine.OWNER_ROLE()
    with reverts(engine.InvalidParameter, name=b"role".ljust(32, b"\0"), value=int.from_bytes(role, "big")):
        engine.setRole(role, alice, True, sender=deployer)


def test_set_depth_rejects_depth_beyond_bound(engine, deployer):
    with reverts(engine.InvalidParameter, name=b"depth2pct".ljust(32, b"\0"), value=10**36 + 1):
        engine.setDepth(BTC, 10**36 + 1, sender=deployer)
    engine.setDepth(BTC, 10**36, sender=deployer)


def test_deposit_insurance_success(system, engine, deployer, alice):
    system.usdc.mint(alice, 10 * USDC, sender=deployer)
    system.usdc.approve(engine, 10 * USDC, sender=alice)
    fund = engine.insuranceFund()
    receipt = engine.depositInsurance(10 * USDC, sender=alice)
    # Token units, as Deposit and Withdrawal report.
    assert events(receipt, engine.InsuranceFundDeposit) == expected_events({"from": alice, "amount": 10 * USDC})
    assert engine.insuranceFund() == fund + 10 * WAD
    assert engine.balanceSheet()[2] == fund + 10 * WAD


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill", "chargePenalty", "settleDeficit"])
def test_liquidation_hooks_only_liquidator(engine, deployer, alice, bob, hook):
    args = {
        "liquidationFill": (cross_id(alice), BTC, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), BTC, -WAD, BTC_PRICE),
        "chargePenalty": (cross_id(alice), bob, 1, 1),
        "settleDeficit": (cross_id(alice), BTC, True),
    }[hook]
    # the owner is not a liquidator either
    with reverts(engine.Unauthorized, caller=deployer, role=engine.LIQUIDATOR_ROLE()):
        getattr(engine, hook)(*args, sender=deployer)


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill", "settleDeficit"])
def test_liquidation_hooks_unknown_market(engine, liquidator, alice, bob, hook):
    args = {
        "liquidationFill": (cross_id(alice), 4, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), 4, -WAD, BTC_PRICE),
        "settleDeficit": (cross_id(alice), 4, True),
    }[hook]
    with reverts(engine.UnknownMarket, marketId=4):
        getattr(engine, hook)(*args, sender=liquidator)


@pytest.mark.parametrize("hook", ["liquidationFill", "adlFill"])
def test_liquidation_hooks_stale_price(system, chain, engine, deployer, liquidator, alice, bob, hook):
    # settleDeficit reads no price: it acts only on closed-out accounts (see below).
    args = {
        "liquidationFill": (cross_id(alice), BTC, -WAD),
        "adlFill": (cross_id(alice), cross_id(bob), BTC, -WAD, BTC_PRICE),
    }[hook]
    updated_at, now = make_stale(system, chain, BTC)
    with reverts(system.router.StalePrice, marketId=BTC, updatedAt=updated_at, nowTs=now, heartbeat=HEARTBEAT):
        getattr(engine, hook)(*args, sender=liquidator)


def test_liquidation_fill_book_exhausted(system, engine, deployer, liquidator, alice):
    open_long(system, alice, WAD, 100_000)
    impact = mul_div_up(501 * BTC_PRICE, IMPACT_AT_DEPTH, BTC_DEPTH)
    with reverts(engine.BookExhausted, marketId=BTC, impact=impact, maxImpact=MAX_IMPACT):
        engine.liquidationFill(cross_id(alice), BTC, -501 * WAD, sender=liquidator)
    engine.setDepth(BTC, 0, sender=deployer)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.liquidationFill(cross_id(alice), BTC, -WAD, sender=liquidator)
    with reverts(engine.BookExhausted, marketId=BTC, impact=MAX_UINT, maxImpact=MAX_IMPACT):
        engine.previewLiquidationFill(cross_id(alice), BTC, -WAD)


def test_liquidation_fill_success_matches_preview(system, chain, engine, liquidator, alice, vault):
    open_long(system, alice, WAD // 2, 10_000)
    chain.mine()  # preview and fill in fresh blocks: the open's book consumption stays in its block
    aid, size = cross_id(alice), -(WAD // 2)
    fill, value_after, mm_after = engine.previewLiquidationFill(aid, BTC, size)
    assert fill == engine.quote(BTC, size)
    _, alice_on = engine.getPosition(alice, BTC)
    _, vault_on = engine.getPosition(vault, BTC)
    receipt = engine.liquidationFill(aid, BTC, size, sender=liquidator)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=aid, marketId=BTC, sizeDelta=size, fillPrice=fill, newSize=0, newOpenNotional=0,
             realizedPnl=s_wmul_down(WAD // 2, fill) - alice_on),
        dict(accountId=cross_id(vault), marketId=BTC, sizeDelta=-size, fillPrice=fill, newSize=0,
             newOpenNotional=0, realizedPnl=s_wmul_down(-(WAD // 2), fill) - vault_on),
    )
    assert engine.health(aid) == (value_after, mm_after, 0)
    assert mm_after == 0
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (0, 0, 0)


def test_adl_fill_success(system, engine, deployer, liquidator, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    price = BTC_PRICE + 1_000 * WAD
    size = -(2 * WAD // 5)
    receipt = engine.adlFill(cross_id(alice), cross_id(bob), BTC, size, price, sender=liquidator)
    assert events(receipt, engine.PositionChanged) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, sizeDelta=size, fillPrice=price, newSize=3 * WAD // 5,
             newOpenNotional=3 * BTC_PRICE // 5, realizedPnl=400 * WAD),
        dict(accountId=cross_id(bob), marketId=BTC, sizeDelta=-size, fillPrice=price, newSize=-3 * WAD // 5,
             newOpenNotional=-3 * BTC_PRICE // 5, realizedPnl=-400 * WAD),
    )
    view = engine.marketView(BTC)
    assert (view.longOpenInterest, view.shortOpenInterest, view.vaultSize) == (3 * WAD // 5, 3 * WAD // 5, 0)


def test_charge_penalty_success(system, engine, liquidator, alice, carol):
    system.fund(alice, 1_000)
    fund = engine.insuranceFund()
    count = engine.accountCount()
    receipt = engine.chargePenalty(cross_id(alice), carol, 30 * WAD, 70 * WAD, sender=liquidator)
    assert events(receipt, engine.PenaltyCharged) == expected_events(
        dict(accountId=cross_id(alice), keeper=carol, toKeeper=30 * WAD, toFund=70 * WAD)
    )
    assert events(receipt, engine.AccountRegistered) == expected_events(dict(accountId=cross_id(carol), index=count))
    assert engine.collateralOf(cross_id(alice)) == 900 * WAD
    assert engine.collateralOf(cross_id(carol)) == 30 * WAD
    assert engine.insuranceFund() == fund + 70 * WAD


def test_charge_penalty_amount_too_large(engine, liquidator, alice, carol):
    with reverts(engine.IntOverflow, value=2**255):
        engine.chargePenalty(cross_id(alice), carol, 2**255, 0, sender=liquidator)


def test_settle_deficit_of_solvent_account_does_nothing(system, engine, deployer, liquidator, alice, bob):
    system.fund(alice, 20_000)
    system.fund(bob, 20_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    before = engine.health(cross_id(alice))
    receipt = engine.settleDeficit(cross_id(alice), BTC, True, sender=liquidator)
    for event in (engine.InsuranceFundPayment, engine.LossSocialized, engine.BadDebtRecorded):
        assert events(receipt, event) == []
    assert engine.health(cross_id(alice)) == before
    assert (engine.insuranceFund(), engine.badDebt()) == (0, 0)


def _closed_out_underwater(system, engine, deployer, liquidator, alice, bob):
    """alice's underwater long closed against the vault: no position left, value below -$900."""
    _underwater_long(system, engine, deployer, alice, bob)
    engine.liquidationFill(cross_id(alice), BTC, -WAD, sender=liquidator)
    assert engine.marketMaskOf(cross_id(alice)) == 0
    value = engine.accountValue(alice)
    assert value < -900 * WAD
    return value


def test_settle_deficit_waits_while_a_position_is_open(system, engine, deployer, liquidator, alice, bob):
    before = _underwater_long(system, engine, deployer, alice, bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, False, sender=liquidator)
    assert events(receipt, engine.InsuranceFundPayment) == events(receipt, engine.BadDebtRecorded) == []
    assert engine.accountValue(alice) == before and engine.badDebt() == 0


def test_settle_deficit_fund_then_bad_debt(system, engine, deployer, liquidator, alice, bob):
    system.fund_insurance(500)
    before = _closed_out_underwater(system, engine, deployer, liquidator, alice, bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, False, sender=liquidator)
    assert events(receipt, engine.InsuranceFundPayment) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, amount=500 * WAD)
    )
    assert events(receipt, engine.BadDebtRecorded) == expected_events(
        dict(accountId=cross_id(alice), marketId=BTC, amount=-before - 500 * WAD)
    )
    assert (engine.insuranceFund(), engine.badDebt()) == (0, -before - 500 * WAD)
    assert engine.accountValue(alice) == 0


def test_settle_deficit_socialized(system, engine, deployer, liquidator, alice, bob):
    before = _closed_out_underwater(system, engine, deployer, liquidator, alice, bob)
    bob_before = engine.accountValue(bob)
    receipt = engine.settleDeficit(cross_id(alice), BTC, True, sender=liquidator)
    # spread over every open position: bob's short 1 and the vault's long 1 (it took alice's sell)
    delta = mul_div_up(-before, WAD, 2 * WAD)
    assert events(receipt, engine.LossSocialized) == expected_events(
        dict(marketId=BTC, accountId=cross_id(alice), amount=-before, indexDelta=delta)
    )
    assert events(receipt, engine.BadDebtRecorded) == []
    assert engine.marketView(BTC).socialLossIndex == delta
    assert engine.accountValue(alice) == 0
    assert engine.accountValue(bob) == bob_before - delta
    assert engine.badDebt() == 0


def test_bankruptcy_price_reverts_and_value(system, engine, deployer, alice, bob):
    with reverts(engine.UnknownMarket, marketId=6):
        engine.bankruptcyPrice(alice, 6)
    with reverts(engine.ZeroAmount):
        engine.bankruptcyPrice(alice, BTC)  # no position
    system.fund(alice, 10_100)
    system.fund(bob, 100_000)
    engine.settleMatchedFill(alice, bob, BTC, WAD, BTC_PRICE, sender=deployer)
    assert engine.bankruptcyPrice(alice, BTC) == BTC_PRICE - (10_100 * WAD - 1)
    assert engine.bankruptcyPriceOf(cross_id(bob), BTC) == BTC_PRICE + (100_000 * WAD - 1)


def test_book_capacity_and_preview_unknown_market(engine, alice):
    with reverts(engine.UnknownMarket, marketId=2):
        engine.bookCapacity(2, True)
    with reverts(engine.UnknownMarket, marketId=2):
        engine.previewLiquidationFill(cross_id(alice), 2, WAD)
    edge = BTC_DEPTH * MAX_IMPACT // IMPACT_AT_DEPTH
    assert engine.bookCapacity(BTC, True) == engine.bookCapacity(BTC, False) == edge == 50_000_000 * WAD


