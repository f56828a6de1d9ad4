"""The forecast's nested backtest on a dense stream and on the shared postings.

    .venv/bin/python -m benchmarks.forecast_backtest [../shared/data/muse]

1. Synthetic streams of `careerpulse_assets_tests/test_forecast.py`: a busy category with a
   weekly rhythm and a sparse one over 120 days; five categories posted every day for 90 days
   with a weekly rhythm and a slow trend.
2. The shared postings' gold grid by their API category under its current name (postings without
   one as "Unknown category"), silver as the pipeline builds it, the grid as `gold_daily_counts`
   does.

For each: per category the candidate, whether the earlier windows chose it over seasonal naive,
the later windows scored and both MASEs on them (utilsforecast's, each window against its own
history), and the note when a window was left out; then the means `forecast_beats_seasonal_naive`
compares.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

from careerpulse_assets.core.forecast import forecast_categories
from careerpulse_assets_tests.test_forecast import dense, gold
from careerpulse_assets_tests.test_gold import daily_counts

from .classifier_comparison import silver_from_archive


def shared_counts(folder: Path) -> pd.DataFrame:
    silver = silver_from_archive(folder)
    days = pd.to_datetime(silver["publication_date"], utc=True).dt.date
    rows = zip(days, silver["category"].fillna("Unknown category"), [False] * len(silver),
               strict=True)
    return daily_counts(list(rows))


def report(name: str, daily: pd.DataFrame) -> None:
    result = forecast_categories(daily)
    print(f"\n### {name}: {daily['day'].nunique()} days, {daily['category'].nunique()} categories, "
          f"{int(daily['postings'].sum())} postings\n")
    if result.skipped:
        print(f"skipped: {result.skipped}")
        return
    print(result.backtest.to_markdown(index=False, floatfmt=".3f"))
    means = result.mean_mase()
    if means:
        print(f"\nmean MASE on the later windows: chosen {means[0]:.3f}, seasonal naive "
              f"{means[1]:.3f} -> forecast_beats_seasonal_naive "
              f"{'passes' if means[0] <= means[1] else 'warns'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/data/muse")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    report("weekly rhythm and a sparse category, 120 days", gold(120))
    report("dense 90-day stream", dense(90))
    if Path(args.folder).is_dir():
        report("shared postings", shared_counts(Path(args.folder)))


if __name__ == "__main__":
    main()
