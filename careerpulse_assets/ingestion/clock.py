"""What time it is: this machine's clock, or the API's when the two disagree.

A machine's clock can be wrong for days (NTP stopped, a VM resumed from a snapshot, a container
with a frozen clock). Wrong by 10 days behind, postings published in the API's last 3 days look
"more than 7 days after the item was fetched" and are quarantined, and the newest posting is
"-9.2 days" old; 8 days ahead, walks are stamped in the future, gold's grid runs into days that
have not happened, and the next weekly full crawl is due a week late.

The Muse API answers every request with an HTTP `Date` header (RFC 9110: when the answer was
made, to the second). When it differs from this machine's clock by more than CLOCK_TOLERANCE,
the API's time is used where a time is stored or compared: a page's `fetched_at`, the crawls'
stamps, "now" for the checks, gold's today; and every run says so. The offset measured by the
latest run that asked the API is kept in `bronze.bronze_api_clock` (one row) for the steps and
checks that make no request. Without an API (an archive) this machine's clock is all there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import duckdb

# Clocks this close agree: a Date header is whole seconds, made before the answer travelled.
CLOCK_TOLERANCE = timedelta(minutes=5)

CLOCK_TABLE_SQL = """
CREATE SCHEMA IF NOT EXISTS bronze;
CREATE TABLE IF NOT EXISTS bronze.bronze_api_clock (
    measured_at TIMESTAMPTZ NOT NULL,  -- the API's time when it was measured
    offset_seconds DOUBLE NOT NULL,  -- the API's time minus this machine's (0: they agree)
    run_id VARCHAR
);
"""


def local_now() -> datetime:
    return datetime.now(timezone.utc)


def header_time(value: str | None) -> datetime | None:
    """An HTTP `Date` header ("Sun, 07 Dec 2026 11:10:24 GMT") as an aware UTC datetime; None
    when it is missing or not a date."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC, says RFC 5322
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def clock_offset(local: datetime, api: datetime | None) -> timedelta:
    """The API's time minus this machine's, when they differ by more than CLOCK_TOLERANCE;
    zero when they agree or there is no API time."""
    if api is None or abs(api - local) <= CLOCK_TOLERANCE:
        return timedelta(0)
    return api - local


def describe_offset(offset: timedelta) -> str:
    """'this machine's clock is 10.0 days behind the API's' (hours under two days)."""
    size = abs(offset).total_seconds()
    amount = (f"{size / 86_400:.1f} days" if size >= 2 * 86_400
              else f"{size / 3_600:.1f} hours")
    way = "behind" if offset > timedelta(0) else "ahead of"
    return f"this machine's clock is {amount} {way} the API's"


@dataclass
class Clock:
    """Now by this machine's clock corrected by `offset` (the API's time minus this machine's);
    `measured` once an answer of the API has said what its time is."""

    offset: timedelta = timedelta(0)
    measured: bool = False

    def now(self) -> datetime:
        return local_now() + self.offset

    def observe(self, offset: timedelta | None) -> None:
        """Take the offset of an answer (None: the answer had no usable Date header)."""
        if offset is not None:
            self.offset, self.measured = offset, True


def stored_offset(connection: duckdb.DuckDBPyConnection) -> timedelta:
    """The offset the latest run that asked the API measured; zero when none did."""
    try:
        row = connection.execute(
            "SELECT offset_seconds FROM bronze.bronze_api_clock ORDER BY measured_at DESC LIMIT 1"
        ).fetchall()
    except duckdb.CatalogException:
        return timedelta(0)
    return timedelta(seconds=row[0][0]) if row else timedelta(0)


def store_offset(connection: duckdb.DuckDBPyConnection, clock: Clock, run_id: str | None) -> None:
    """Keep what `clock` measured as the one row of `bronze.bronze_api_clock`."""
    connection.execute(CLOCK_TABLE_SQL)
    connection.execute("DELETE FROM bronze.bronze_api_clock")
    connection.execute("INSERT INTO bronze.bronze_api_clock VALUES (?, ?, ?)",
                       [clock.now(), clock.offset.total_seconds(), run_id])


def reference_now(connection: duckdb.DuckDBPyConnection) -> datetime:
    """Now: this machine's clock corrected by the offset the latest run measured against the
    API (ingestion/clock.py)."""
    return local_now() + stored_offset(connection)
