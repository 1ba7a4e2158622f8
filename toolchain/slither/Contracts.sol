// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// The root slither analyses (`.ci/slither`): with a folder as its target, only top-level files
// become sources; every contract is reached through these imports.
import {PerpEngine} from "../../contracts/engine/PerpEngine.sol";
import {LiquidationEngine} from "../../contracts/liquidation/LiquidationEngine.sol";
import {OracleRouter} from "../../contracts/oracle/OracleRouter.sol";
import {PriceFeed} from "../../contracts/oracle/PriceFeed.sol";
import {MockUSDC} from "../../contracts/mocks/MockUSDC.sol";
