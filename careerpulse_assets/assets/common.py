"""What every asset module shares: the DuckDB pool, owners, and how tables are previewed."""

import base64

import pandas as pd
from dagster import MetadataValue

# Every step that opens careerpulse.duckdb is in this pool; dagster-instance.yaml limits it to 1.
DUCKDB_POOL = "careerpulse_duckdb"
OWNERS = ["team:careerpulse"]
PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60


def preview(frame: pd.DataFrame) -> MetadataValue:
    """The first rows as a markdown table, long texts cut, for the asset's page in the UI."""
    head = frame.head(PREVIEW_ROWS).copy()
    for column in head.columns:
        head[column] = head[column].map(
            lambda value: value if not isinstance(value, str) or len(value) <= PREVIEW_CELL_CHARS
            else value[:PREVIEW_CELL_CHARS] + "…"
        )
    return MetadataValue.md(head.to_markdown(index=False))


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    """A PNG as markdown metadata: the UI shows it under *Show Markdown*."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def rounded(values: dict, digits: int = 3) -> dict:
    """Floats rounded for reading in the UI (MLflow keeps the exact values)."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in values.items()}
