"""What runs CareerPulse: settings, the preflight checks, `make run` and its summary, `make ui` /
`make serve`, the Dagster instance file, recovery of dead runs, and the DuckDB file (opening it,
transactions, the readers' snapshot)."""
