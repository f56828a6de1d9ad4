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
            description="On the later half of the rolling-origin backtest (each category's model "
            "chosen on the earlier half), the chosen models' mean MASE is not above seasonal "
            "naive's (same weekday last week), which is itself a candidate. Categories whose "
            "history has no week-to-week change have no MASE and are listed as not scored. WARN.",
        )
    ],
    description=f"The next {HORIZON} days of postings for every category, with an 80 % "
    "interval, from the better of two models in a rolling-origin backtest (8 origins a week "
    "apart, MASE against each window's own history): SeasonalNaive(7), and AutoETS (weekly "
    "season) where a category is posted on most days or Croston where it is sparse. Learns from "
    "the last year of gold; under 8 weeks of history it skips.",
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
        yield forecast_check(True, "not judged: too little history for the backtest, or no "
                             "category with a scorable window")
        return
    model_mase, baseline_mase = mase
    scored = result.backtest.dropna(subset=["chosen_mase"])
    yield forecast_check(
        model_mase <= baseline_mase,
        f"mean MASE {model_mase:.3f} (models chosen on earlier windows) vs {baseline_mase:.3f} "
        f"({BASELINE}) on the later windows, over {len(scored)} of {len(result.backtest)} "
        "categories (the others have no week-to-week change to scale by)",
        {"mean_mase_chosen": round(model_mase, 3), "mean_mase_seasonal_naive": round(baseline_mase, 3),
         "categories_scored": len(scored), "categories_not_scored": len(result.backtest) - len(scored)},
    )


def forecast_check(passed: bool, description: str, metadata: dict | None = None):
    return AssetCheckResult(
        check_name="forecast_beats_seasonal_naive",
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata or {},
    )
