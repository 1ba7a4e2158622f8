"""perpsim: stress-test perpetual-futures exchanges against real contracts on anvil."""

__version__ = "0.1.0"
