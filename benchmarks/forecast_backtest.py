"""The forecast's nested backtest: MASE against seasonal naive and 80 % interval coverage, per
category, on synthetic streams and on the shared postings.

    .venv/bin/python -m benchmarks.forecast_backtest [../shared/data/muse] [--duckdb FILE]

1. A dense 120-day stream (`careerpulse_assets_tests/test_forecast.py`): five categories posted
   every day with a weekly rhythm and a slow trend; and 120 days of a busy weekly category with a
   sparse one. Every day complete.
2. The shared postings' gold as the pipeline builds it from the archive folder (bronze, silver,
   gold with its observed/complete flags), every posting as listed: no classifier, so postings
   without a category are `Unclassified`.
3. With `--duckdb FILE`: the gold of a pipeline run (`$CAREERPULSE_HOME/careerpulse.duckdb`, for
   instance the shared postings with the quality bar lowered, imputations included).

Per category: posted share, the metric the model was chosen by, the model chosen on the 4
earlier windows, MASE and RMSSE of it and of seasonal naive on the 4 later ones, the share of
actual counts inside the 80 % intervals there (alpha from the earlier windows) and the PIT
coverage (ties split: 0.80 when calibrated, whatever the sparsity). Then the figures
`forecast_beats_seasonal_naive` judges and the forecast's dates.
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from careerpulse_assets.series.forecast import forecast_categories
from careerpulse_assets_tests.gold_frames import archive_gold
from careerpulse_assets_tests.test_forecast import dense, gold

SHOWN = ["category", "posted_day_share", "chosen_by", "chosen_on_earlier", "chosen_mase",
         "baseline_mase", "chosen_rmsse", "baseline_rmsse", "interval_coverage", "pit_coverage"]


def _figure(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def report(name: str, daily: pd.DataFrame, today: date) -> None:
    started = time.perf_counter()
    result = forecast_categories(daily, today)
    seconds = time.perf_counter() - started
    print(f"\n### {name}: {daily['day'].nunique()} days, {daily['category'].nunique()} "
          f"categories, {int(daily['postings'].sum())} postings ({seconds:.1f} s)\n")
    if result.skipped:
        print(f"skipped: {result.skipped}")
        return
    table = result.backtest[SHOWN].rename(columns={"posted_day_share": "posted share"})
    print(table.to_markdown(index=False, floatfmt=".3f"))
    busy, scored = result.mean_mase(busy_only=True), result.mean_mase()
    print(f"\n- categories posted on most days: {len(result.backtest) - len(result.intermittent)}"
          + (f", mean MASE chosen {busy[0]:.3f} vs seasonal naive {busy[1]:.3f}" if busy else ""))
    if scored:
        print(f"- all scored categories: mean MASE chosen {scored[0]:.3f} vs {scored[1]:.3f}")
    later = result.later_windows
    intermittent = later[later["category"].isin(result.intermittent)]
    print(f"- 80 % interval coverage (share of actual counts inside): overall "
          f"{_figure(result.coverage())}, busy {_figure(result.coverage(busy_only=True))}, "
          "intermittent " + _figure(intermittent["y"].between(
              intermittent["lower"], intermittent["upper"]).mean() if len(intermittent) else None)
          + f"; PIT coverage, mean over categories {result.backtest['pit_coverage'].mean():.3f}")
    forecast = result.forecast
    software = forecast[forecast["category"] == "Software Engineering"]
    print(f"- forecast {forecast['day'].min()} to {forecast['day'].max()} (run day {today}), "
          f"data until {forecast['data_until'].max()}, {forecast['data_age_days'].min()} days "
          f"old; models {forecast.groupby('model')['category'].nunique().to_dict()}"
          + (f"; Software Engineering {software['forecast'].mean():.3f} a day "
             f"({software['model'].iloc[0]})" if len(software) else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/data/muse")
    parser.add_argument("--duckdb", type=Path, help="a pipeline run's careerpulse.duckdb")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    today = datetime.now(timezone.utc).date()
    for name, stream in [("dense 120-day stream", dense(120)),
                         ("weekly rhythm and a sparse category, 120 days", gold(120))]:
        report(name, stream, max(stream["day"]) + pd.Timedelta(days=1))
    if Path(args.folder).is_dir():
        report("shared postings as listed", archive_gold(Path(args.folder)), today)
    if args.duckdb:
        with duckdb.connect(str(args.duckdb), read_only=True) as connection:
            pipeline_gold = connection.execute("SELECT * FROM gold.gold_daily_counts").fetchdf()
        report(f"gold of {args.duckdb}", pipeline_gold, today)


if __name__ == "__main__":
    main()
