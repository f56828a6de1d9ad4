import json
from datetime import date

import duckdb
import pandas as pd

from careerpulse_assets.core.gold import write_daily_counts
from careerpulse_assets.core.silver_store import silver_frame

from .muse_fixtures import synthetic_postings


def daily_counts(rows) -> pd.DataFrame:
    """gold.gold_daily_counts from imputed rows (publication_day, category, is_imputed)."""
    imputed = pd.DataFrame(rows, columns=["publication_day", "category", "is_imputed"])
    imputed["publication_day"] = pd.to_datetime(imputed["publication_day"]).dt.date
    with duckdb.connect() as connection:
        connection.execute("CREATE SCHEMA silver")
        connection.register("frame", imputed)
        connection.execute("CREATE TABLE silver.imputed_silver AS SELECT * FROM frame")
        write_daily_counts(connection)
        return connection.execute("SELECT * FROM gold.gold_daily_counts").fetchdf()


def test_every_day_and_category_is_present_with_zeros():
    counts = daily_counts([
        ("2026-01-01", "Sales", False),
        ("2026-01-01", "Sales", True),
        ("2026-01-04", "Healthcare", True),
    ])
    assert len(counts) == 4 * 2
    counts["day"] = pd.to_datetime(counts["day"]).dt.date
    assert counts["day"].tolist()[::2] == [date(2026, 1, d) for d in (1, 2, 3, 4)]
    by_cell = counts.set_index(["day", "category"])
    assert by_cell.loc[(date(2026, 1, 1), "Sales")].tolist() == [2, 1]
    assert by_cell.loc[(date(2026, 1, 2), "Sales")].tolist() == [0, 0]
    assert by_cell.loc[(date(2026, 1, 4), "Healthcare")].tolist() == [1, 1]
    assert counts["postings"].sum() == 3 and counts["imputed_postings"].sum() == 2


def test_days_are_utc_days():
    item = dict(synthetic_postings()[0], publication_date="2026-01-01T23:30:00-05:00")
    changed = pd.DataFrame([{
        "posting_id": item["id"], "bronze_row_id": 1, "payload": json.dumps(item),
        "source": "t", "page": 0, "fetched_at": pd.Timestamp("2026-01-02", tz="UTC"),
        "run_id": None,
    }])
    frame, _ = silver_frame(changed)
    assert frame["publication_day"].tolist() == [date(2026, 1, 2)]
