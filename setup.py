from setuptools import find_packages, setup

setup(
    name="careerpulse_assets",
    version="0.1.0",
    description="Muse job postings to a gap-free daily demand series, as Dagster assets.",
    python_requires=">=3.11,<3.13",
    packages=find_packages(exclude=["careerpulse_assets_tests", "benchmarks"]),
    package_data={"careerpulse_assets": ["review/*.yaml"]},
    install_requires=[
        # dagster and its integration libraries move together: each 0.29.27 pins dagster 1.13.27.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-dg-cli==1.13.27",  # `dg dev`, `dg launch`, `dg check defs`
        "dagster-duckdb==0.29.27",
        "dagster-duckdb-pandas==0.29.27",  # the tables' IO manager (careerpulse_assets/io_managers.py)
        "dagster-mlflow==0.29.27",
        "dagster-postgres==0.29.27",  # DAGSTER_POSTGRES_URL: the instance in PostgreSQL
        # SQLAlchemy 2.1 reads postgresql:// URLs with psycopg 3, whose server-side parameters
        # break dagster-postgres's `NOTIFY run_events, %(id)s` (dagster-io/dagster#33958): 2.0
        # reads them with the psycopg2 that dagster-postgres brings, for Dagster and MLflow.
        "SQLAlchemy>=2.0.40,<2.1",
        "duckdb==2.0.1",
        "pandas>=2.2,<3",  # the dagster integrations do not support pandas 3
        "mlflow==3.17.2",
        "scikit-learn==1.9.1",
        "requests==2.34.2",
        "urllib3==2.8.0",
        "lxml==6.0.2",
        "pyarrow==25.0.1",
        "matplotlib==3.11.2",
        "tabulate==0.10.0",  # DataFrame.to_markdown in metadata and the benchmarks' tables
        "PyYAML==6.0.4",
        "statsforecast==2.1.1",
        # Quantification: the category mix of postings without a category (PCC, EMQ, ...).
        "quapy==0.2.3",
    ],
    # playwright drives the Debian chromium that .ci/run installs; it downloads no browser.
    extras_require={"dev": ["pytest==9.2.0", "pytest-xdist==3.8.0", "playwright==1.65.2",
                            "pyinstrument==5.1.3"]},
)
