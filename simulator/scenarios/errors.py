"""The one error a scenario file can cause."""

from __future__ import annotations

from typing import Optional, Sequence

from simulator.errors import PerpsimError


class ScenarioError(PerpsimError, ValueError):
    """A scenario file (or name) that cannot be used, with where and why.

    The message names the file, the line when known, the key path (``markets[2].depth2pct``) and
    the problem, for example::

        oct.yaml, line 14: markets[2].depth2pct: should be greater than 0, got -5

    ``more`` holds further problems found in the same file, one line each, so a user can fix them
    all in one go; the attributes describe the first."""

    def __init__(
        self,
        problem: str,
        *,
        source: Optional[str] = None,
        key_path: Optional[str] = None,
        line: Optional[int] = None,
        more: Sequence[str] = (),
    ):
        self.problem = problem
        self.source = source
        self.key_path = key_path
        self.line = line
        self.more = tuple(more)
        where = source or "scenario"
        if line is not None:
            where += f", line {line}"
        message = f"{where}: {key_path}: {problem}" if key_path else f"{where}: {problem}"
        if self.more:
            message += f"\n({len(self.more)} more problem{'s' if len(self.more) > 1 else ''})\n" + "\n".join(
                f"  {entry}" for entry in self.more
            )
        super().__init__(message)

    @property
    def location(self) -> str:
        """`file, line N: key.path` without the problem, for the first problem."""
        where = self.source or "scenario"
        if self.line is not None:
            where += f", line {self.line}"
        return f"{where}: {self.key_path}" if self.key_path else where
