import json

import duckdb
import pytest
import yaml

from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema, store_page
from careerpulse_assets.ingestion.silver_store import update_silver
from careerpulse_assets.review.taxonomy import (
    TAXONOMY_FILE,
    Taxonomy,
    TaxonomyError,
    category_names,
    load_taxonomy,
    name_key,
)
from careerpulse_assets.ingestion.pages import RawPage

from .conftest import SHARED_MUSE
from .muse_fixtures import synthetic_postings


def names_in(path):
    return {c["name"] for item in json.loads(path.read_text()) for c in item["categories"]}


def test_every_mapping_target_is_a_current_name():
    taxonomy = load_taxonomy()
    assert set(taxonomy.old_to_current.values()) <= taxonomy.current
    # `lossy: true` marks an old name that covered more than the current one it maps to.
    entries = yaml.safe_load(TAXONOMY_FILE.read_text())["old_to_current"]
    lossy = {entry["old"] for entry in entries if entry.get("lossy")}
    assert "Engineering" in lossy and "Data Science" not in lossy


def test_the_shared_postings_old_names_are_mapped_and_current_names_known(shared_items):
    taxonomy = load_taxonomy()
    old = names_in(SHARED_MUSE / "muse_2014_2017_skillaggregator.json")
    current = names_in(SHARED_MUSE / "muse_2025_2026_job_market.json") | names_in(
        SHARED_MUSE / "muse_2021_2026_software_engineering.json"
    )
    assert old <= set(taxonomy.old_to_current)
    assert current - {"Unknown"} <= taxonomy.current
    assert taxonomy.unknown({name: 1 for name in old | current}) == {}


def test_a_mapping_to_a_name_that_is_not_current_is_refused(tmp_path):
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text("version: 1\ncurrent: [Sales]\nold_to_current:\n  - {old: Selling, current: Sells}\n")
    with pytest.raises(TaxonomyError, match="not a current name"):
        load_taxonomy(bad)


def test_silver_counts_old_names_under_current_ones_and_keeps_the_raw_name():
    items = synthetic_postings(per_category=3, unlabelled=0)
    items[0]["categories"] = [{"name": "Engineering"}]
    items[1]["categories"] = [{"name": "Quantum Basket Weaving"}]
    with duckdb.connect() as connection:
        ensure_bronze_schema(connection)
        store_page(connection, RawPage("t", 0, items))
        update_silver(connection)
        rows = dict(connection.execute(
            "SELECT category_raw, category FROM silver.silver_postings WHERE posting_id IN (?, ?)",
            [items[0]["id"], items[1]["id"]],
        ).fetchall())
        assert rows == {"Engineering": "Software Engineering",
                        "Quantum Basket Weaving": "Quantum Basket Weaving"}

        # A new version of the mapping re-maps rows already in silver.
        taxonomy = load_taxonomy()
        newer = Taxonomy(
            version=taxonomy.version + 1,
            current=taxonomy.current | {"Crafts"},
            old_to_current={**taxonomy.old_to_current, "Quantum Basket Weaving": "Crafts"},
        )
        update_silver(connection, newer)
        assert connection.execute(
            "SELECT category FROM silver.silver_postings WHERE posting_id = ?", [items[1]["id"]]
        ).fetchone()[0] == "Crafts"


def test_unknown_names_are_listed_most_frequent_first_and_unknown_is_no_name():
    taxonomy = load_taxonomy()
    assert taxonomy.unknown({"Sales": 5, "Unknown": 3, "Robotics": 2, "Alchemy": 7}) == {
        "Alchemy": 7, "Robotics": 2,
    }


def test_names_are_compared_without_case_spacing_or_ampersands():
    assert name_key("Data & Analytics") == name_key("data and analytics") == name_key(
        "Data\u00a0 and \t Analytics") == "data and analytics"
    taxonomy = load_taxonomy()
    assert taxonomy.current_name("  SOFTWARE engineering ") == "Software Engineering"
    assert taxonomy.current_name("marketing and pr") == "Advertising and Marketing"  # old, mapped
    assert taxonomy.unknown({"Data & Analytics": 3, "healthcare & medicine": 1, "Robotics": 2}) == {
        "Robotics": 2}
    with pytest.raises(TaxonomyError, match="reads as 'sales'"):
        Taxonomy(1, frozenset({"Sales", "SALES"}), {})


def test_names_the_taxonomy_lacks_are_counted_under_the_spelling_served_most():
    names = category_names(load_taxonomy(), {"Nursing & Care": 3, "nursing and care": 5,
                                             "Data & Analytics": 7, "Unknown": 9})
    assert names.counted_as("NURSING & CARE") == "nursing and care"
    assert names.counted_as("Data  and Analytics") == "Data and Analytics"
    assert names.counted_as("Unknown") is None and names.counted_as("Robotics") is None
    frame = names.mapping_frame(["Nursing & Care", "Data & Analytics", "Robotics"])
    assert frame.values.tolist() == [["Nursing & Care", "nursing and care"],
                                     ["Data & Analytics", "Data and Analytics"]]


def test_silver_counts_spelling_variants_as_one_category():
    items = synthetic_postings(per_category=3, unlabelled=0)
    spellings = ["Data & Analytics", "data and analytics", "Data  and  Analytics",
                 "Nursing & Care", "nursing and care", "Nursing & Care"]
    for item, name in zip(items, spellings, strict=False):
        item["categories"] = [{"name": name}]
    with duckdb.connect() as connection:
        ensure_bronze_schema(connection)
        store_page(connection, RawPage("t", 0, items))
        update_silver(connection)
        counted = dict(connection.execute(
            "SELECT category, count(*) FROM silver.silver_postings WHERE posting_id IN "
            f"({', '.join(str(i['id']) for i in items[:6])}) GROUP BY category").fetchall())
    assert counted == {"Data and Analytics": 3, "Nursing & Care": 3}
