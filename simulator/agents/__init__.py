"""Agents acting on the exchange each step: keepers (liquidation, ADL) and traders."""
