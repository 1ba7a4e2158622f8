"""Static analysis of the contracts with slither, against the triage in triage.yaml.

    python toolchain/slither/check.py          (make slither; CI runs it after the tests)

slither (PyPI `slither-analyzer`, pinned below) is installed once into `.cache/slither-venv`, apart
from the project's environment (its dependencies are not the Ape stack's), and runs offline through
the project's compiler stand-in, with HOME inside the checkout (it writes `~/.solc-select`). Exits 1
when a High or Medium finding is not in the triage, naming each; reports triage entries that match
nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SLITHER = "slither-analyzer==0.11.6"
VENV = ROOT / ".cache" / "slither-venv"
HOME = ROOT / ".cache" / "slither-home"
TARGET = ROOT / "toolchain" / "slither"  # Contracts.sol imports every contract
TRIAGE = TARGET / "triage.yaml"


def main() -> int:
    slither = _installed()
    HOME.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as scratch:
        report = Path(scratch) / "slither.json"
        run = subprocess.run(
            [str(slither), str(TARGET.relative_to(ROOT)), "--solc", str(_standin()), "--solc-standard-json",
             "--exclude-informational", "--exclude-low", "--exclude-optimization", "--json", str(report)],
            cwd=ROOT, env={**os.environ, "HOME": str(HOME)}, capture_output=True, text=True)
        if not report.is_file():
            print(run.stderr[-3000:], file=sys.stderr)
            print("slither: the analysis did not run (see above)", file=sys.stderr)
            return 1
        found = json.loads(report.read_text())
    if not found.get("success"):
        print(f"slither: {found.get('error')}", file=sys.stderr)
        return 1
    triage = yaml.safe_load(TRIAGE.read_text())
    accepted = {(check, name) for check, entry in triage.items() for name in entry["functions"]}
    findings = found["results"].get("detectors", [])
    seen, untriaged = set(), []
    for finding in findings:
        key = (finding["check"], _where(finding["elements"][0]))
        seen.add(key)
        if key not in accepted:
            untriaged.append(f"  {finding['impact']} {finding['check']} in {key[1]}: "
                             f"{finding['description'].splitlines()[0]}")
    stale = sorted(accepted - seen)
    print(f"slither: {len(findings)} High/Medium finding(s), {len(findings) - len(untriaged)} of them triaged "
          f"({TRIAGE.relative_to(ROOT)})")
    for check, name in stale:
        print(f"  triage entry matches nothing now: {check} {name}")
    if untriaged:
        print("slither: findings not in the triage (fix them, or add them with a reason):", file=sys.stderr)
        print("\n".join(untriaged), file=sys.stderr)
        return 1
    return 0


def _where(element: dict) -> str:
    """Contract.function (or Contract.function.variable for a local) of a finding's first element."""
    parent = element.get("type_specific_fields", {}).get("parent", {})
    if element["type"] == "variable" and parent.get("type") == "function":
        contract = parent.get("type_specific_fields", {}).get("parent", {}).get("name")
        return f"{contract}.{parent['name']}.{element['name']}"
    return f"{parent.get('name')}.{element['name']}"


def _installed() -> Path:
    slither = VENV / "bin" / "slither"
    stamp = VENV / "installed"
    if not slither.is_file() or not stamp.is_file() or stamp.read_text() != SLITHER:
        print(f"slither: installing {SLITHER} into {VENV.relative_to(ROOT)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        install = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q",
                                  "--disable-pip-version-check", SLITHER], capture_output=True, text=True,
                                 env={**os.environ, "PIP_CACHE_DIR": str(ROOT / ".cache" / "pip")})
        if install.returncode != 0:
            print(install.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"slither: could not install {SLITHER} (see above)")
        stamp.write_text(SLITHER)
    return slither


def _standin() -> Path:
    version = yaml.safe_load((ROOT / "ape-config.yaml").read_text())["solidity"]["version"]
    return ROOT / ".solcx" / f"solc-v{version}"


if __name__ == "__main__":
    sys.exit(main())
