"""Mutation check of the contract suites: `python -m tests.mutation [NAME ...]` (or `make mutants`).

The contracts, tests and config are copied once into a temporary folder (not under .cache/, whose
contracts Ape would not compile), so editing them during a run changes nothing in it; the
simulator package is the installed one. For each mutant of tests/mutation/mutants.py: copy those
sources again, apply the mutant to the copy (the checkout is never edited), compile it with Ape,
run the suites against it and record which tests fail. Hypothesis runs the "mutation" profile: the
CI examples without shrinking, since a failure is all that is asked. A mutant no suite catches is
a hole in the tests; the exit status is 1 if any mutant survives or cannot be run. Every copy is
removed as its mutant finishes, the folder at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tests.mutation.mutants import PROJECT_ROOT, Mutant, by_name

# The suites that run the contracts and the model in lockstep (tests/twin/harness.Twin).
DEFAULT_SUITES = ("tests/test_differential.py", "tests/test_adl_rounds.py", "tests/test_stateful.py", "tests/regressions")
# What a copy needs to compile and test: the sources and the configuration Ape and pytest read.
COPIED = ("contracts", "tests", "ape-config.yaml", "pyproject.toml")
# The sources as they were when the check started, copied once, so editing the checkout meanwhile
# changes nothing in the run.
SOURCES = "sources"
APE = Path(sys.executable).with_name("ape")


@dataclass
class Outcome:
    mutant: str
    mechanism: str
    error: str
    status: str  # caught | survived | broken
    caught_by: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""


def _copy_project(root: Path, into: Path) -> None:
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(source, into / name)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def _failures(junit: Path) -> tuple[list[str], list[str], str]:
    """(failed test ids, errored test ids, the first failure's message) from pytest's JUnit XML."""
    failed, errored, first_message = [], [], ""
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if (failure := case.find("failure")) is not None:
            failed.append(test_id)
            first_message = first_message or (failure.get("message") or "").splitlines()[0][:300]
        elif case.find("error") is not None:
            errored.append(test_id)
    return failed, errored, first_message


def suites_of(mutant: Mutant, chosen: tuple[str, ...]) -> tuple[str, ...]:
    """What runs against `mutant`: the suites chosen on the command line, else its own, else the
    lockstep suites."""
    return chosen or mutant.suites or DEFAULT_SUITES


def check_mutant(mutant: Mutant | None, suites: tuple[str, ...], workspace: Path) -> Outcome:
    """Runs the suites on a copy of `workspace / SOURCES` with `mutant` applied (None: the
    unmutated baseline)."""
    started = time.monotonic()
    name = mutant.name if mutant else "baseline"
    outcome = Outcome(name, mutant.mechanism if mutant else "-", mutant.error if mutant else "none", "broken")
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workspace))
    env = {**os.environ, "HYPOTHESIS_PROFILE": "mutation"}
    try:
        _copy_project(workspace / SOURCES, work)
        if mutant:
            mutant.apply(work)
        compiled = _run([str(APE), "compile", "--force"], work, env)
        if compiled.returncode != 0:
            outcome.detail = "does not compile: " + (compiled.stderr or compiled.stdout).strip()[-400:]
            return outcome
        junit = work / "junit.xml"
        tested = _run(
            [str(APE), "test", *suites, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"], work, env
        )
        if not junit.exists():
            outcome.detail = f"pytest exited {tested.returncode} without a report: " + tested.stdout.strip()[-400:]
            return outcome
        failed, errored, outcome.detail = _failures(junit)
        if errored:
            # A set-up error says nothing about the mutant (the copy or the chain is broken).
            outcome.detail = "errors in " + ", ".join(errored) + ": " + tested.stdout.strip()[-600:]
        elif failed:
            outcome.status, outcome.caught_by = "caught", failed
        else:
            outcome.status = "survived" if mutant else "passed"
        return outcome
    except ValueError as exc:
        outcome.detail = str(exc)
        return outcome
    finally:
        outcome.seconds = round(time.monotonic() - started, 1)
        shutil.rmtree(work, ignore_errors=True)


def _table(outcomes: list[Outcome]) -> Table:
    table = Table(title="Mutants of the contracts")
    for column in ("mutant", "mechanism", "what it gets wrong", "result", "caught by", "s"):
        table.add_column(column, overflow="fold")
    colour = {"caught": "green", "survived": "red", "broken": "yellow", "passed": "green"}
    for o in outcomes:
        table.add_row(
            o.mutant, o.mechanism, o.error, f"[{colour[o.status]}]{o.status}[/]",
            escape("\n".join(o.caught_by + [o.detail])), f"{o.seconds:.0f}",
        )
    return table


@click.command()
@click.argument("names", nargs=-1)
@click.option("--suite", "suites", multiple=True,
              help="Test files (or node ids) run against every mutant; repeat for several. Default: "
                   "each mutant's own suites (`Mutant.suites`), else " + ", ".join(DEFAULT_SUITES) + ".")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 8),
              help="Mutants checked at once (each one compiles and runs its own anvil).")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="First run the suites on an unmutated copy; they must pass there, or a failure "
                   "under a mutant would prove nothing.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the outcomes to this JSON file.")
def main(names: tuple[str, ...], suites: tuple[str, ...], jobs: int, baseline: bool, json_path: Path | None) -> None:
    """Apply each deliberate error in NAMES (all by default) and check that the suites catch it."""
    try:
        mutants = by_name(list(names))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAMES") from None
    console = Console()
    if not console.is_terminal:
        console.width = 160
    workspace = Path(tempfile.mkdtemp(prefix="perpsim-mutants-"))
    outcomes: list[Outcome] = []
    try:
        _copy_project(PROJECT_ROOT, workspace / SOURCES)
        for mutant in mutants:
            if mutant.occurrences(workspace / SOURCES) != 1:
                raise click.ClickException(f"mutant {mutant.name} no longer applies to {mutant.path}")
        if baseline:
            # Every suite that will run against a mutant, once, unmutated.
            reference = check_mutant(None, tuple(dict.fromkeys(
                suite for mutant in mutants for suite in suites_of(mutant, suites))), workspace)
            console.print(f"baseline: {reference.status} ({reference.seconds:.0f} s) {escape(reference.detail)}")
            if reference.status != "passed":
                raise click.ClickException("the suites do not pass on an unmutated copy: " + reference.detail)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for outcome in pool.map(lambda m: check_mutant(m, suites_of(m, suites), workspace), mutants):
                console.print(f"{outcome.mutant}: {outcome.status} ({outcome.seconds:.0f} s) "
                              f"{escape(', '.join(outcome.caught_by) or outcome.detail)}")
                outcomes.append(outcome)
                if json_path:
                    json_path.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    console.print(_table(outcomes))
    caught = sum(o.status == "caught" for o in outcomes)
    console.print(f"{caught} of {len(outcomes)} mutants caught by "
                  f"{', '.join(suites) if suites else 'their suites'}")
    sys.exit(0 if caught == len(outcomes) else 1)


if __name__ == "__main__":
    main()
