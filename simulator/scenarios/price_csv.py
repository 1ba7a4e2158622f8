"""Reading a historical price series (``timestamp,price`` rows) for a ``csv`` price path.

Timestamps are Unix seconds (integers or decimals) or ISO 8601 date-times
(``2025-10-10T21:15:00Z``); a first row whose price is not a number is taken as a header. Rows
must be in strictly increasing time and prices must be positive. Problems raise ``ValueError``
naming the CSV file and line; the scenario loader turns them into a ScenarioError."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PriceSeries:
    """A price series read from a CSV file: seconds since the first row, and prices."""

    seconds: np.ndarray
    prices: np.ndarray
    source: str


def _parse_timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        # A naive time is taken as UTC, so a series replays the same on every machine.
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_price_csv(path: Path | str) -> PriceSeries:
    """Reads ``timestamp,price`` rows. Raises ValueError naming the file and line of a bad row."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"CSV file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read CSV file {path}: {exc}") from None

    times: list[float] = []
    prices: list[float] = []
    for line_number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not cells or all(not cell for cell in cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2:
            raise ValueError(f"{name}, line {line_number}: expected 'timestamp,price', got {','.join(cells)!r}")
        stamp, price_text = cells[0], cells[1]
        if not times and not _is_number(price_text):
            continue  # header row
        try:
            seconds = _parse_timestamp(stamp)
        except ValueError:
            raise ValueError(
                f"{name}, line {line_number}: timestamp {stamp!r} is neither Unix seconds nor an ISO 8601 date-time"
            ) from None
        if not _is_number(price_text):
            raise ValueError(f"{name}, line {line_number}: price {price_text!r} is not a number")
        price = float(price_text)
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"{name}, line {line_number}: price must be positive, got {price_text}")
        if times and seconds <= times[-1]:
            raise ValueError(
                f"{name}, line {line_number}: timestamps must increase; {stamp!r} is not after the previous row"
            )
        times.append(seconds)
        prices.append(price)
    if len(times) < 2:
        raise ValueError(f"{name}: needs at least two 'timestamp,price' rows, found {len(times)}")
    seconds_array = np.asarray(times, dtype=float)
    return PriceSeries(
        seconds=seconds_array - seconds_array[0], prices=np.asarray(prices, dtype=float), source=str(path)
    )
