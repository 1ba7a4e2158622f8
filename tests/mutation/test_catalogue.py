"""The mutant catalogue still fits the contracts: each snippet occurs exactly once in its file, so
`python -m tests.mutation` applies every mutant where it was meant to; and one mutant run end to
end, so the check itself keeps working (`make mutants` runs them all; too long for every CI run)."""

import subprocess
import sys

import pytest

from tests.mutation.mutants import MUTANTS, PROJECT_ROOT, Mutant, by_name


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_snippet_occurs_once(mutant: Mutant):
    assert mutant.original != mutant.mutated
    assert mutant.occurrences() == 1, f"{mutant.name}: snippet occurs {mutant.occurrences()} times in {mutant.path}"


def test_names_are_unique_and_selectable():
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names)
    assert [m.name for m in by_name(names[:2])] == names[:2]
    with pytest.raises(ValueError, match="unknown mutant"):
        by_name(["no-such-mutant"])


def test_apply_edits_only_the_copy(tmp_path):
    mutant = MUTANTS[0]
    (tmp_path / mutant.path).parent.mkdir(parents=True)
    (tmp_path / mutant.path).write_text(mutant.source())
    mutant.apply(tmp_path)
    assert mutant.mutated in (tmp_path / mutant.path).read_text()
    assert mutant.occurrences() == 1  # the checkout is untouched
    with pytest.raises(ValueError, match="occurs 0 times"):
        mutant.apply(tmp_path)


def test_a_mutant_is_caught_end_to_end(toolchain_checked):
    """The whole check on one mutant and the pinned test aimed at it (about 30 s): the copy, Ape's
    compile of the mutated contracts, the suite failing under it, the report, the clean-up."""
    test = "tests/test_differential.py::test_a_penalty_takes_no_more_than_the_equity_left"
    done = subprocess.run([sys.executable, "-m", "tests.mutation", "--no-baseline", "--suite", test,
                           "penalty-not-capped"], capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "penalty-not-capped: caught" in done.stdout and "1 of 1 mutants caught" in done.stdout
