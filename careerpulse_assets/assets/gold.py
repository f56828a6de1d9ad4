import base64

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
from .common import DUCKDB_POOL, OWNERS, preview

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
            "daily_postings": MetadataValue.md(
                "![weekly postings per category and imputed share](data:image/png;base64,"
                f"{base64.b64encode(daily_counts_png(counts)).decode()})"
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
        yield AssetCheckResult(
            check_name="forecast_beats_seasonal_naive",
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description=f"not judged: {result.skipped}",
        )
        return
    volumes = result.history.groupby("category")["postings"].sum().nlargest(PLOTTED_CATEGORIES)
    image = base64.b64encode(
        forecast_png(result.history, result.forecast, list(volumes.index))
    ).decode()
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
            "history_and_forecast": MetadataValue.md(
                f"![history and forecast](data:image/png;base64,{image})"
            ),
        },
    )
    if mase is None:
        yield AssetCheckResult(
            check_name="forecast_beats_seasonal_naive",
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description="not judged: too little history for the backtest",
        )
        return
    model_mase, baseline_mase = mase
    yield AssetCheckResult(
        check_name="forecast_beats_seasonal_naive",
        passed=model_mase < baseline_mase,
        severity=AssetCheckSeverity.WARN,
        description=f"mean MASE {model_mase:.3f} (chosen models) vs {baseline_mase:.3f} "
        f"({BASELINE}) over {len(result.backtest)} categories",
        metadata={"mean_mase_chosen": model_mase, "mean_mase_seasonal_naive": baseline_mase},
    )
