"""One exception hierarchy for perpsim. Every error a user can cause derives from PerpsimError.

Leaves also inherit the matching builtin (as Ape does), so ``except ValueError`` keeps working.
Each error carries a ``user_message`` for people, built once in ``__init__``.
"""

from __future__ import annotations


class PerpsimError(Exception):
    """Base class of every perpsim error."""

    def __init__(self, user_message: str):
        super().__init__(user_message)
        self.user_message = user_message


class ToolchainError(PerpsimError, RuntimeError):
    """The offline toolchain (compiler stand-in, anvil, Python environment) is missing or broken."""

    def __init__(self, problem: str, fix: str = "run `make setup` in the project folder"):
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


class ChainError(PerpsimError, ConnectionError):
    """The devnet cannot be reached, died, or answered a request with an error."""

    def __init__(self, uri: str, problem: str):
        super().__init__(f"the devnet at {uri} {problem}")
        self.uri = uri
        self.problem = problem
