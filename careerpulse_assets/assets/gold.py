import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)

from ..core.forecast import BASELINE, HORIZON, forecast_categories
from ..core.gold import daily_counts
from ..core.plots import daily_counts_png, forecast_png
from .common import DUCKDB_POOL, OWNERS, png_markdown, preview

PLOTTED_CATEGORIES = 6


@asset(
    group_name="reporting",
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    tags={"layer": "gold"},
    pool=DUCKDB_POOL,
    metadata={"schema": "gold"},
    description="Postings per UTC day and category from the first to the last publication day, "
    "a row for every day and category (zeros included): the series a demand forecast uses.",
)
def gold_daily_counts(context: AssetExecutionContext, imputed_silver: pd.DataFrame) -> pd.DataFrame:
    counts = daily_counts(imputed_silver)
    context.add_output_metadata(
        {
            "days": int(counts["day"].nunique()),
            "categories": int(counts["category"].nunique()),
            "first_day": str(counts["day"].min()),
            "last_day": str(counts["day"].max()),
            "daily_postings": png_markdown(
                daily_counts_png(counts), "weekly postings per category and imputed share"
            ),
            "latest_rows": preview(counts.sort_values(["day", "postings"], ascending=False)),
        }
    )
    return counts


@asset(
    group_name="reporting",
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    tags={"layer": "gold"},
    pool=DUCKDB_POOL,
    metadata={"schema": "gold"},
    check_specs=[
        AssetCheckSpec(
            "forecast_beats_seasonal_naive",
            asset="gold_category_forecast",
            description="Over the rolling-origin backtest the chosen models' mean MASE is below "
            "seasonal naive's (same weekday last week). WARN.",
        )
    ],
    description=f"The next {HORIZON} days of postings for every category, with an 80 % "
    "interval: AutoETS (weekly season) where a category is posted on most days, Croston where "
    "it is sparse, SeasonalNaive(7) as the baseline both are backtested against (8 origins a "
    "week apart, MASE). Learns from the last year of gold; under 8 weeks of history it skips.",
)
def gold_category_forecast(context: AssetExecutionContext, gold_daily_counts: pd.DataFrame):
    result = forecast_categories(gold_daily_counts)
    if result.skipped:
        context.log.warning(f"forecast skipped: {result.skipped}")
        yield Output(
            pd.DataFrame(columns=["category", "day", "forecast", "lower", "upper", "model"]),
            metadata={"skipped": result.skipped},
        )
        yield forecast_check(True, f"not judged: {result.skipped}")
        return
    volumes = result.history.groupby("category")["postings"].sum().nlargest(PLOTTED_CATEGORIES)
    image = forecast_png(result.history, result.forecast, list(volumes.index))
    mase = result.mean_mase()
    yield Output(
        result.forecast,
        metadata={
            "categories": int(result.forecast["category"].nunique()),
            "first_day": str(result.forecast["day"].min()),
            "last_day": str(result.forecast["day"].max()),
            "models": result.forecast.groupby("model")["category"].nunique().to_dict(),
            "first_rows": preview(result.forecast),
            "backtest": MetadataValue.md(
                result.backtest.to_markdown(index=False, floatfmt=".3f")
            ),
            "history_and_forecast": png_markdown(image, "history and forecast"),
        },
    )
    if mase is None:
        yield forecast_check(True, "not judged: too little history for the backtest")
        return
    model_mase, baseline_mase = mase
    yield forecast_check(
        model_mase < baseline_mase,
        f"mean MASE {model_mase:.3f} (chosen models) vs {baseline_mase:.3f} ({BASELINE}) over "
        f"{len(result.backtest)} categories",
        {"mean_mase_chosen": model_mase, "mean_mase_seasonal_naive": baseline_mase},
    )


def forecast_check(passed: bool, description: str, metadata: dict | None = None):
    return AssetCheckResult(
        check_name="forecast_beats_seasonal_naive",
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata or {},
    )
