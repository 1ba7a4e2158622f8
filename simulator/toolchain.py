"""Checks of the offline toolchain, so that a missing piece is named instead of surfacing as a
download time-out (py-solc-x) or a 20 s connection time-out (ape-foundry)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from simulator.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pinned_solc_version(root: Path = PROJECT_ROOT) -> str:
    config = yaml.safe_load((root / "ape-config.yaml").read_text())
    return str(config["solidity"]["version"])


def check_compiler(root: Path = PROJECT_ROOT) -> Path:
    """The compiler stand-in is registered where py-solc-x looks, and answers with the pinned version."""
    version = pinned_solc_version(root)
    folder = Path(os.environ.get("SOLCX_BINARY_PATH", Path.home() / ".solcx"))
    standin = folder / f"solc-v{version}"
    if not standin.is_file() or not os.access(standin, os.X_OK):
        raise ToolchainError(
            f"the offline Solidity compiler {version} is not registered at {standin} "
            "(without it Ape tries to download solc and fails with a ConnectionError)"
        )
    result = subprocess.run([str(standin), "--version"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or f"Version: {version}" not in result.stdout:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ToolchainError(f"the compiler stand-in {standin} is broken: {detail[-1] if detail else 'no output'}")
    return standin


def check_anvil() -> Path:
    """`anvil` on PATH is the project's wrapper (which adds the flags that keep runs clean)."""
    found = shutil.which("anvil")
    if found is None:
        raise ToolchainError("`anvil` is not on PATH")
    result = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ToolchainError(f"`{found} --version` failed: {result.stderr.strip() or result.stdout.strip()}")
    if Path(found).resolve() != (PROJECT_ROOT / "toolchain" / "bin" / "anvil").resolve():
        raise ToolchainError(
            f"`anvil` on PATH is {found}, not the project's wrapper toolchain/bin/anvil "
            "(which adds --max-persisted-states 0 so nothing is written under ~/.foundry)",
            fix="run perpsim from the project's environment (.venv/bin/...) or put toolchain/bin first on PATH",
        )
    return Path(found)


def check() -> None:
    check_compiler()
    check_anvil()
