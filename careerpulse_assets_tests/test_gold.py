from datetime import date

import pandas as pd

from careerpulse_assets.core.gold import daily_counts


def imputed(rows):
    return pd.DataFrame(rows, columns=["publication_date", "category", "is_imputed"]).assign(
        publication_date=lambda df: pd.to_datetime(df["publication_date"], utc=True)
    )


def test_every_day_and_category_is_present_with_zeros():
    counts = daily_counts(
        imputed(
            [
                ("2026-01-01T10:00:00Z", "Sales", False),
                ("2026-01-01T23:59:59Z", "Sales", True),
                ("2026-01-04T00:00:00Z", "Healthcare", True),
            ]
        )
    )
    assert len(counts) == 4 * 2
    assert counts["day"].tolist()[::2] == [date(2026, 1, d) for d in (1, 2, 3, 4)]
    by_cell = counts.set_index(["day", "category"])
    assert by_cell.loc[(date(2026, 1, 1), "Sales")].tolist() == [2, 1]
    assert by_cell.loc[(date(2026, 1, 2), "Sales")].tolist() == [0, 0]
    assert by_cell.loc[(date(2026, 1, 4), "Healthcare")].tolist() == [1, 1]
    assert counts["postings"].sum() == 3 and counts["imputed_postings"].sum() == 2


def test_days_are_utc_days():
    counts = daily_counts(imputed([("2026-01-01T23:30:00-05:00", "Sales", False)]))
    assert counts["day"].tolist() == [date(2026, 1, 2)]
