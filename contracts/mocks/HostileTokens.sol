// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Hostile collateral tokens, for tests only
/// @notice Tokens that break the assumptions of a plain ERC-20, to show what the engine does with
/// each as its collateral: a fee on every transfer, no return value (USDT style), a callback into
/// a contract during `transferFrom` (re-entry), and balances that rebase.

/// @dev A minimal 6-decimal token with a hook on every transfer; `mint` is open (tests only).
abstract contract TestToken {
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) internal _balances;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        _balances[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function balanceOf(address account) public view virtual returns (uint256) {
        return _balances[account];
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function _spend(address from, uint256 amount) internal {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance(from, msg.sender, allowed, amount);
            allowance[from][msg.sender] = allowed - amount;
        }
    }

    function _move(address from, address to, uint256 amount) internal virtual {
        uint256 balance = _balances[from];
        if (balance < amount) revert InsufficientBalance(from, balance, amount);
        _balances[from] = balance - amount;
        _balances[to] += amount;
        emit Transfer(from, to, amount);
    }
}

/// @notice Burns 1% of every transfer: the receiver gets less than was sent.
contract FeeOnTransferToken is TestToken {
    uint256 public constant FEE_BPS = 100;

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) internal override {
        uint256 fee = amount * FEE_BPS / 10_000;
        super._move(from, to, amount);
        _balances[to] -= fee;
        totalSupply -= fee;
        emit Transfer(to, address(0), fee);
    }
}

/// @notice `transfer` and `transferFrom` return nothing (as USDT does on Ethereum).
contract NoReturnToken is TestToken {
    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external {
        _spend(from, amount);
        _move(from, to, amount);
    }
}

/// @notice Calls `target` with `data` in the middle of `transferFrom` (after the allowance is spent,
/// before the balances move), as an ERC-777 hook would; a revert of the callback is re-raised.
contract ReentrantToken is TestToken {
    address public target;
    bytes public data;

    function setCallback(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        if (target != address(0)) {
            (bool ok, bytes memory reason) = target.call(data);
            if (!ok) {
                assembly {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
        _move(from, to, amount);
        return true;
    }
}

/// @notice Balances are shares times an index the owner of the test can move: `rebase` changes
/// every holder's balance at once, the engine's included.
contract RebasingToken is TestToken {
    uint256 public constant ONE = 1e18;
    uint256 public index = ONE;

    function rebase(uint256 newIndex) external {
        index = newIndex;
    }

    function balanceOf(address account) public view override returns (uint256) {
        return _balances[account] * index / ONE;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount * ONE / index);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        _move(from, to, amount * ONE / index);
        return true;
    }
}
