from dagster import AssetExecutionContext, MaterializeResult, MetadataValue
from dagster_duckdb import DuckDBResource

from ..core.forecast import HORIZON, forecast_categories
from ..core.gold import write_daily_counts
from ..core.plots import daily_counts_png, forecast_png
from ..core.sql import transaction_with
from .common import Heartbeat, careerpulse_asset, png_markdown, preview, table_metadata
from .ml import imputed_silver

PLOTTED_CATEGORIES = 6


@careerpulse_asset(
    layer="gold",
    group="reporting",
    kinds={"duckdb"},
    deps=[imputed_silver],
    description="`gold.gold_daily_counts`: postings per UTC day and category from the first to "
    "the last publication day, a row for every day and category (zeros included), "
    "`imputed_postings` of them imputed: the series a demand forecast uses. Plain SQL over "
    "`silver.imputed_silver`.",
)
def gold_daily_counts(context: AssetExecutionContext, duckdb: DuckDBResource) -> MaterializeResult:
    with duckdb.get_connection() as connection:
        write_daily_counts(connection)
        counts = connection.execute("SELECT * FROM gold.gold_daily_counts").fetchdf()
        metadata = table_metadata(connection, "gold.gold_daily_counts")
    return MaterializeResult(metadata={
        **metadata,
        "days": int(counts["day"].nunique()),
        "categories": int(counts["category"].nunique()),
        "first_day": str(counts["day"].min().date()) if len(counts) else None,
        "last_day": str(counts["day"].max().date()) if len(counts) else None,
        "daily_postings": png_markdown(
            daily_counts_png(counts), "weekly postings per category and imputed share"
        ),
        "latest_rows": preview(counts.sort_values(["day", "postings"], ascending=False)),
    })


@careerpulse_asset(
    layer="gold",
    group="reporting",
    kinds={"duckdb", "pandas"},
    deps=[gold_daily_counts],
    description=f"`gold.gold_category_forecast`: the next {HORIZON} days of postings for every "
    "category, with an 80 % interval, from the better of two models in a rolling-origin "
    "backtest (8 origins a week apart, MASE against each window's own history): "
    "SeasonalNaive(7), and AutoETS (weekly season) where a category is posted on most days or "
    "Croston where it is sparse. The backtest is in `gold.gold_forecast_backtest`. Learns from "
    "the last year of gold; under 8 weeks of history it skips.",
)
def gold_category_forecast(
    context: AssetExecutionContext, duckdb: DuckDBResource
) -> MaterializeResult:
    with duckdb.get_connection() as connection:
        gold = connection.execute("SELECT * FROM gold.gold_daily_counts").fetchdf()
    with Heartbeat(context.log.info, "gold_category_forecast"):
        result = forecast_categories(gold)
    forecast, backtest = result.forecast, result.backtest
    with duckdb.get_connection() as connection:
        with transaction_with(connection, forecast_rows=forecast.astype({"day": "datetime64[ns]"}),
                              backtest_rows=backtest):
            connection.execute("CREATE OR REPLACE TABLE gold.gold_category_forecast AS "
                               "SELECT category, CAST(day AS DATE) AS day, forecast, lower, upper, "
                               "model FROM forecast_rows")
            connection.execute("CREATE OR REPLACE TABLE gold.gold_forecast_backtest AS "
                               "SELECT * FROM backtest_rows")
        metadata = table_metadata(connection, "gold.gold_category_forecast")
    if result.skipped:
        context.log.warning(f"forecast skipped: {result.skipped}")
        return MaterializeResult(metadata={**metadata, "skipped": result.skipped})
    volumes = result.history.groupby("category")["postings"].sum().nlargest(PLOTTED_CATEGORIES)
    image = forecast_png(result.history, result.forecast, list(volumes.index))
    return MaterializeResult(metadata={
        **metadata,
        "categories": int(forecast["category"].nunique()),
        "first_day": str(forecast["day"].min()),
        "last_day": str(forecast["day"].max()),
        "models": forecast.groupby("model")["category"].nunique().to_dict(),
        "first_rows": preview(forecast),
        "backtest": MetadataValue.md(backtest.to_markdown(index=False, floatfmt=".3f")),
        "history_and_forecast": png_markdown(image, "history and forecast"),
    })
