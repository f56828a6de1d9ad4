"""Reviewers' labels: read as given, every unusable row quarantined with file, line and reason."""

from datetime import datetime, timezone

import pytest

from careerpulse_assets.review.labels import LabelFile, posting_ids_named, read_labels
from careerpulse_assets.review.taxonomy import category_names, load_taxonomy

KNOWN = {101, 102, 103, 104}


def read(*files: tuple[str, str | bytes], known=KNOWN):
    return read_labels(
        [LabelFile(name, text if isinstance(text, bytes) else text.encode()) for name, text in files],
        known, load_taxonomy(),
    )


def test_labels_are_read_as_given_and_old_names_become_current_ones():
    result = read(("a.csv", "posting_id,category,note\n101,Sales,looks like sales\n"
                            "102,Engineering,\n"))
    labels = result.labels.set_index("posting_id")
    assert labels.loc[101, "category"] == "Sales" and labels.loc[101, "note"] == "looks like sales"
    assert labels.loc[102, "category"] == "Software Engineering"  # the old name, mapped
    assert labels.loc[102, "label_file"] == "a.csv" and labels.loc[102, "label_line"] == 3
    assert result.quarantine.empty


@pytest.mark.parametrize("text, reason", [
    ("posting_id,category\n999,Sales\n", "posting_id is not a posting in silver"),
    ("posting_id,category\nabc,Sales\n", "posting_id is not a posting id: 'abc'"),
    ("posting_id,category\n101,Basket Weaving\n", "category 'Basket Weaving' is neither a current"),
    ("posting_id,category\n101,\n", "category is empty"),
    ("posting_id,category,labelled_at\n101,Sales,yesterday\n", "labelled_at is not ISO-8601"),
    ("posting_id,category\n101,Sales,extra\n", "malformed row: more fields than the header"),
    ("id,label\n101,Sales\n", "malformed file: the header must name posting_id, category"),
    (b"posting_id,category\n101,Caf\xe9\n", "malformed file: not UTF-8"),
    ('posting_id,category\n101,"Sales\n', "malformed file: not CSV"),
])
def test_every_bad_row_is_quarantined_with_file_line_and_reason(text, reason):
    result = read(("bad.csv", text))
    assert result.labels.empty
    (row,) = result.quarantine.to_dict(orient="records")
    assert row["label_file"] == "bad.csv" and row["reason"].startswith(reason), row


def test_of_two_disagreeing_labels_the_later_one_wins_and_the_other_is_quarantined():
    first = "posting_id,category,labelled_at\n101,Sales,2026-03-01T10:00:00Z\n103,Healthcare,\n"
    second = "posting_id,category,labelled_at\n101,Healthcare,2026-02-01\n103,Education,\n"
    result = read(("b-second.csv", second), ("a-first.csv", first))
    labels = result.labels.set_index("posting_id")["category"].to_dict()
    # 101: labelled later wins, whatever the file; 103: neither dated, the file named last wins.
    assert labels == {101: "Sales", 103: "Education"}
    reasons = dict(zip(result.quarantine["posting_id"], result.quarantine["reason"], strict=True))
    assert reasons[101].startswith("disagrees with a-first.csv:2 ('Sales'), which wins")
    assert reasons[103].startswith("disagrees with b-second.csv:3 ('Education'), which wins")
    # The same category twice is no disagreement.
    assert read(("a.csv", "posting_id,category\n101,Sales\n"),
                ("b.csv", "posting_id,category\n101,Sales\n")).quarantine.empty


def test_rows_waiting_for_a_reviewer_are_not_labels_yet():
    text = ("posting_id,category,note,labelled_by,labelled_at,title\n"
            "101,Sales,,,,Account Executive\n102,Healthcare,,ana,2026-03-01,Nurse\n")
    result = read(("review-20260301.csv", "\ufeff" + text))
    assert result.labels["posting_id"].tolist() == [102]
    assert result.awaiting_review == 1 and result.quarantine.empty
    assert result.labels["labelled_at"].iloc[0] == datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_the_postings_a_folder_names_include_rows_awaiting_review_but_not_malformed_files():
    files = [
        LabelFile("review-1.csv", b"posting_id,category,labelled_by\n101,Sales,\n102,Sales,ana\n"),
        LabelFile("ana.CSV", b"\xef\xbb\xbfposting_id,category\n 103 ,Sales\nabc,Sales\n"),
        LabelFile("broken.csv", b"id;label\n104;x\n"),
        LabelFile("latin.csv", "posting_id,category\n105,Café\n".encode("latin-1")),
        LabelFile("gone.csv", b"", error="Permission denied"),
    ]
    assert posting_ids_named(files) == {101, 102, 103}


def test_a_category_the_api_serves_is_a_label_and_spellings_are_one_name():
    # Postings of another board, served through the API, list categories the taxonomy lacks.
    served = category_names(load_taxonomy(), {"Nursing & Care": 30, "nursing and care": 2,
                                              "Unknown": 4, "Software Engineering": 50})
    files = [LabelFile("ana.csv", "posting_id,category\n101,nursing  and care\n"
                                  "102,NURSING & CARE\n103,data & analytics\n"
                                  "104,Unknown\n".encode())]
    result = read_labels(files, KNOWN, served)
    labels = result.labels.set_index("posting_id")["category"].to_dict()
    # Counted under the API's most used spelling, or the taxonomy's current name.
    assert labels == {101: "Nursing & Care", 102: "Nursing & Care", 103: "Data and Analytics"}
    (refused,) = result.quarantine.to_dict(orient="records")
    assert refused["posting_id"] == 104 and "nor one the API serves" in refused["reason"]
    # Without the API's names (a bare taxonomy), the board's category is unknown.
    assert len(read_labels(files, KNOWN, load_taxonomy()).quarantine) == 3


# A label file read while it is saved (issue 27): 20 signed labels, then the file as a save
# leaves it for a moment.
NOW = 1_800_000_000.0
SIGNED = "posting_id,category,labelled_by\n" + "".join(
    f"{pid},Healthcare,ana\n" for pid in range(201, 221))


def settle(text: bytes, modified_seconds_ago: float, before: bytes = SIGNED.encode()):
    from careerpulse_assets.review.labels import settle_label_files

    return settle_label_files([LabelFile("ana.csv", text, modified_at=NOW - modified_seconds_ago)],
                              {"ana.csv": before}, NOW)


@pytest.mark.parametrize("seconds_ago", [0, 3600])
def test_an_empty_label_file_never_undoes_the_labels_it_held(seconds_ago):
    reads = settle(b"", seconds_ago)
    assert [f.data for f in reads.files] == [SIGNED.encode()]  # read as it was
    assert reads.kept["ana.csv"] == SIGNED.encode()
    (refused,) = reads.refused
    assert refused["label_file"] == "ana.csv" and refused["reason"] == (
        "malformed file: the header must name posting_id, category; it names nothing; its last "
        "complete read stays in force (20 labels) until it can be read again or is removed")
    assert reads.notes == [f"ana.csv: {refused['reason']}"]
    assert len(read_labels(reads.files, set(range(201, 221)), load_taxonomy()).labels) == 20


def test_a_half_written_label_file_is_read_as_it_was_until_it_is_stable():
    cut = SIGNED[:SIGNED.index("207,Healthcare,ana")] + "207,Healthcare,"  # the 7th row, cut
    saving = settle(cut.encode(), 2)
    assert [f.data for f in saving.files] == [SIGNED.encode()] and saving.refused == []
    assert saving.notes == [
        "ana.csv was changed 2 s ago and drops or changes 14 of its labels (posting ids 207, 208, "
        "209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220): it is read as it was until "
        "it has been unchanged for 60 s (a file being saved)"]
    # Left so (a save that died half-way), it is what the file says, and what went is named.
    stable = settle(cut.encode(), 61)
    assert [f.data for f in stable.files] == [cut.encode()]
    assert stable.kept["ana.csv"] == cut.encode()
    assert stable.notes == [
        "ana.csv drops or changes 14 of its labels (posting ids 207, 208, 209, 210, 211, 212, 213, "
        "214, 215, 216, 217, 218, 219, 220): as it says now (the file has been unchanged for 60 "
        "s)"]


def test_labels_added_apply_at_once_changed_ones_once_stable_and_a_removed_file_says_so():
    from careerpulse_assets.review.labels import settle_label_files

    added = (SIGNED + "221,Sales,bob\n").encode()
    reads = settle(added, 0)
    assert [f.data for f in reads.files] == [added] and reads.notes == []
    changed = SIGNED.replace("203,Healthcare", "203,Sales").encode()
    assert [f.data for f in settle(changed, 0).files] == [SIGNED.encode()]
    assert "drops or changes 1 of its labels (posting ids 203)" in settle(changed, 0).notes[0]
    assert [f.data for f in settle(changed, 60).files] == [changed]
    removed = settle_label_files([], {"ana.csv": SIGNED.encode()}, NOW)
    assert removed.files == [] and removed.kept == {}
    assert removed.notes == ["ana.csv was removed: its 20 labels no longer apply (posting ids "
                             "201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, "
                             "214, 215, 216, 217, 218, 219, 220)"]
    # A file first seen is read as it is, whatever its state.
    first = settle_label_files([LabelFile("bob.csv", b"", modified_at=NOW)], {}, NOW)
    assert [f.name for f in first.files] == ["bob.csv"] and first.kept == {} and first.notes == []
