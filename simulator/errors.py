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


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`), raised where the run is, as Ctrl-C raises KeyboardInterrupt: a
    BaseException, so no `except Exception` on the way swallows it."""

    signum = 15


# What stopped a run, by signal number, and the exit status that says so (128 + the signal).
SIGNAL_WORDS = {2: "interrupted by Ctrl-C (SIGINT)", 15: "stopped by SIGTERM (kill)"}


def interrupt_signal(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt or SystemExit: Ape's handlers turn SIGINT into
    SystemExit(130) and SIGTERM into SystemExit(143)."""
    if isinstance(exc, SystemExit):
        return 15 if exc.code == 143 else 2
    return getattr(exc, "signum", 2)


class Interrupted(PerpsimError):
    """A command stopped by a signal; the exit status is 128 + its number (130, 143)."""

    def __init__(self, user_message: str, signum: int):
        super().__init__(user_message)
        self.signum = signum
        self.exit_code = 128 + signum
