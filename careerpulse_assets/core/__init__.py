"""Pure logic: no Dagster here, only plain values in and out."""
