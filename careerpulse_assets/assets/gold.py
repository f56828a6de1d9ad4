"""The gold assets, wired: the day × category grid (series/gold.py) and the forecast
(series/forecast.py), each returned as a table the DuckDB `io_manager` writes."""

import pandas as pd
import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output
from dagster_duckdb import DuckDBResource

from ..ingestion.clock import reference_now
from ..series.forecast import (
    FIT_INPUT_COLUMNS,
    HORIZON,
    REFIT_TOLERANCE,
    data_age,
    fit_inputs,
    forecast_categories,
    learning_series,
    refit_reason,
    weekly_forecast,
)
from ..series.gold import (
    UNCLASSIFIED,
    category_totals,
    count_method,
    daily_counts,
    forecast_input,
)
from ..series.plots import daily_counts_png, forecast_png
from ..ops.duckdb_file import declared_table, transaction_with
from .common import Heartbeat, careerpulse_asset, png_markdown, preview
from .ml import imputed_silver

PLOTTED_CATEGORIES = 6


@careerpulse_asset(
    layer="gold",
    group="reporting",
    kinds={"duckdb"},
    deps=[imputed_silver],
    description="`gold.gold_daily_counts`: postings per UTC day and category from the first to "
    "the last publication day (or the newest walk of an API listing), a row for every day and "
    f"category (zeros included; `{UNCLASSIFIED}` for postings nothing was written for), "
    "`imputed_postings` of them imputed; `estimated_postings` with a 90 % interval "
    "(`estimated_low`, `estimated_high`): the day's count of the category with every posting "
    "without a category counted by its calibrated, shift-corrected probabilities (a day's "
    "estimates add up to its postings; the method and its expected error in the metadata and "
    "`silver.unlabelled_mix`); and two flags: `observed` (somebody looked at that day: "
    "a walk of a listing or an archive covered it and it is not inside four weeks without any "
    "posting) and `complete` (every posting of the day was seen: covered by two walks of a "
    "listing at most 3 days apart, after its first complete walk). Observed but not complete "
    "days are backfilled from the postings still open when someone looked: undercounts. Plain "
    "SQL over `silver.imputed_silver`; the flags from `bronze.bronze_crawls` and the postings' "
    "sources (series/coverage.py).",
)
def gold_daily_counts(context: AssetExecutionContext, duckdb: DuckDBResource
                      ) -> Output[pa.Table]:
    with duckdb.get_connection() as connection:
        table = daily_counts(connection)
        method = count_method(connection)
        mix = (connection.execute("SELECT * FROM silver.unlabelled_mix").fetchdf()
               if method.get("expected_count_error") is not None else None)
    counts = table.to_pandas(date_as_object=False)
    days = counts.groupby("day").agg(observed=("observed", "any"), complete=("complete", "all"))
    return Output(table, metadata={
        "days": len(days),
        "days_observed": int(days["observed"].sum()),
        "days_complete": int(days["complete"].sum()),
        "categories": int(counts["category"].nunique()),
        **method,
        "estimated_by_category": MetadataValue.md(category_totals(counts, mix).to_markdown(
            index=False, floatfmt=".1f")) if len(counts) else None,
        "first_day": str(counts["day"].min().date()) if len(counts) else None,
        "last_day": str(counts["day"].max().date()) if len(counts) else None,
        "daily_postings": png_markdown(
            daily_counts_png(counts),
            "weekly postings per category, weeks not seen whole shaded, and the imputed share",
        ) if len(counts) else None,
        "latest_rows": preview(counts.sort_values(["day", "postings"], ascending=False)),
    })


@careerpulse_asset(
    layer="gold",
    group="reporting",
    kinds={"duckdb", "pandas"},
    description=f"`gold.gold_category_forecast`: postings per category (gold's "
    "`estimated_postings`: every posting counted, those without a category by their "
    f"probabilities) for the {HORIZON} days "
    "after the run: `forecast`, the expected count (mean), and `lower` / `upper`, whole "
    "postings holding at least 80 % (the negative binomial around the forecast, its spread "
    "from the model's backtest errors) and the forecast itself; the model, and `data_until` / "
    "`data_age_days`: the newest day it learnt from and how old that is (`data_age` in the "
    "metadata says why). Learns per category "
    "from the complete days of the last year (observed ones when there are too few), never "
    "from days nobody saw. Models: seasonal naive (the baseline), ETS and a seasonal window "
    "average where a category is posted on most days, ADIDA, IMAPA, TSB and Croston SBA where it "
    "is intermittent; the better one in a rolling-origin backtest (8 origins a week apart), "
    "kept in `gold.gold_forecast_backtest` with interval coverage. Under 8 weeks of data it "
    "skips. Made again only when what it learns from changed (another day, a day moved by more "
    "than 0.05 postings: `gold.gold_forecast_inputs`); else the one made earlier today stands, "
    "`made` says so.",
)
def gold_category_forecast(
    context: AssetExecutionContext, gold_daily_counts: pd.DataFrame, duckdb: DuckDBResource
) -> Output[pa.Table]:
    gold = gold_daily_counts
    with duckdb.get_connection() as connection:
        today = reference_now(connection).date()  # the API's day when this clock is wrong
        previous = _fit_inputs_in_place(connection)
    series, _ = learning_series(forecast_input(gold), today)
    why = refit_reason(previous, series, today)
    if why is None:
        kept = _kept_forecast(context, duckdb, previous, gold, today)
        if kept is not None:
            return kept
        why = "the latest materialisation is not the one that made the forecast in place"
    with Heartbeat(context.log.info, "gold_category_forecast"):
        result = forecast_categories(forecast_input(gold), today)
    forecast, backtest = result.forecast, result.backtest
    inputs = fit_inputs(series if not result.skipped else series.iloc[:0], today, context.run_id)
    with duckdb.get_connection() as connection, transaction_with(
            connection, backtest_rows=declared_table(backtest, BACKTEST_ARROW_TYPES),
            input_rows=declared_table(inputs, FIT_INPUT_ARROW_TYPES)):
        connection.execute("CREATE OR REPLACE TABLE gold.gold_forecast_backtest AS "
                           "SELECT * FROM backtest_rows")
        connection.execute("CREATE OR REPLACE TABLE gold.gold_forecast_inputs AS "
                           "SELECT * FROM input_rows")
    table = forecast_table(forecast)
    if result.skipped:
        context.log.warning(f"forecast skipped: {result.skipped}")
        return Output(table, metadata={"skipped": result.skipped})
    newest = max(forecast["data_until"])
    age = (today - newest).days
    why_old = data_age(gold, today, newest)
    if why_old:
        context.log.warning(why_old)
    volumes = result.history.groupby("category")["postings"].sum().nlargest(PLOTTED_CATEGORIES)
    image = forecast_png(result.history, forecast, list(volumes.index), result.intermittent,
                         weekly_forecast(forecast, result.alphas))
    coverage, busy_coverage = result.coverage(), result.coverage(busy_only=True)
    return Output(table, metadata={
        "made": f"in this run: {why}",
        "made_in_run": context.run_id,
        "categories": int(forecast["category"].nunique()),
        "first_day": str(forecast["day"].min()),
        "last_day": str(forecast["day"].max()),
        "data_until": str(newest),
        "data_age_days": age,
        "data_age": why_old or "learnt from yesterday",
        "models": forecast.groupby("model")["category"].nunique().to_dict(),
        "interval_coverage": round(coverage, 3) if coverage is not None else None,
        "interval_coverage_busy": round(busy_coverage, 3) if busy_coverage is not None else None,
        "first_rows": preview(forecast),
        "backtest": MetadataValue.md(backtest.drop(columns=["candidates"]).to_markdown(
            index=False, floatfmt=".3f")),
        "history_and_forecast": png_markdown(image, "history and forecast"),
    })


def _fit_inputs_in_place(connection) -> pd.DataFrame | None:
    """What the forecast in place learnt from (gold.gold_forecast_inputs), None before any or
    when the table is of another shape (written by another version: the forecast is made
    again and the table replaced)."""
    found = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'gold' AND "
        "table_name IN ('gold_forecast_inputs', 'gold_category_forecast')").fetchall()[0][0]
    if found < 2:
        return None
    inputs = connection.sql("SELECT * FROM gold.gold_forecast_inputs").df()
    return inputs if list(inputs.columns) == FIT_INPUT_COLUMNS else None


def _kept_forecast(context: AssetExecutionContext, duckdb: DuckDBResource,
                   previous: pd.DataFrame, gold: pd.DataFrame, today) -> Output | None:
    """The forecast in place, materialised again with the figures it was made with (and why it
    was not made again): None when the latest materialisation is not the one that made it (a
    run that stopped between writing the two), so it is made again."""
    event = context.instance.get_latest_materialization_event(AssetKey("gold_category_forecast"))
    # Without what the IO manager adds itself (row count, schema, table name).
    metadata = {key: value for key, value in
                (event.asset_materialization.metadata.items() if event else ())
                if not key.startswith("dagster/") and key != "table"}
    made_in = metadata.get("made_in_run")
    if made_in is None or made_in.value not in set(previous["fitted_in_run"]):
        return None
    with duckdb.get_connection() as connection:
        table = connection.sql("SELECT * FROM gold.gold_category_forecast").to_arrow_table()
    made = (f"kept from run {made_in.value[:8]} (made today): no day it learns from moved by "
            f"more than {REFIT_TOLERANCE} postings")
    context.log.info(f"forecast {made}")
    # Said again from today's gold: it counts days and postings no forecast learns from.
    why_old = data_age(gold, today, max(table["data_until"].to_pylist()))
    if why_old:
        context.log.warning(why_old)
    return Output(table.cast(pa.schema(list(FORECAST_ARROW_TYPES.items()))),
                  metadata={**metadata, "made": made,
                            "data_age": why_old or "learnt from yesterday"})


# The forecast's and its backtest's tables, as handed to DuckDB (declared_table).
FORECAST_ARROW_TYPES = {
    "category": pa.string(), "day": pa.date32(), "forecast": pa.float64(),
    "lower": pa.float64(), "upper": pa.float64(), "model": pa.string(),
    "data_until": pa.date32(), "data_age_days": pa.int32(),
}
FIT_INPUT_ARROW_TYPES = {
    "category": pa.string(), "day": pa.date32(), "learnt_postings": pa.float64(),
    "fitted_for": pa.date32(), "settings": pa.string(), "fitted_in_run": pa.string(),
}
assert list(FIT_INPUT_ARROW_TYPES) == FIT_INPUT_COLUMNS
BACKTEST_ARROW_TYPES = {
    "category": pa.string(), "learned_from": pa.string(), "learning_days": pa.int64(),
    "posted_day_share": pa.float64(), "data_until": pa.date32(), "candidates": pa.string(),
    "chosen_by": pa.string(), "chosen_on_earlier": pa.string(), "scored_windows": pa.int64(),
    "chosen_mase": pa.float64(), "baseline_mase": pa.float64(), "chosen_rmsse": pa.float64(),
    "baseline_rmsse": pa.float64(), "interval_coverage": pa.float64(),
    "pit_coverage": pa.float64(), "alpha": pa.float64(), "note": pa.string(),
}


def forecast_table(forecast: pd.DataFrame) -> pa.Table:
    """The forecast frame with the table's declared types (day and data_until DATE,
    data_age_days INTEGER), empty or not."""
    return declared_table(forecast, FORECAST_ARROW_TYPES)
