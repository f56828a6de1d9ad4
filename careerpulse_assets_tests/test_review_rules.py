"""The review queue's rules on a frame of judged postings, called directly."""

import pandas as pd
import pytest

from careerpulse_assets.review.queue import RULES, recall_by_category, review_queue


def imputed() -> pd.DataFrame:
    # posting: (guess, its share, runner-up, its share, text)
    rows = {
        1: ("Sales", 0.50, "Healthcare", 0.45, "a"),  # margin 0.05
        2: ("Sales", 0.40, "Healthcare", 0.20, "b"),  # least confident, margin 0.20
        3: ("Sales", 0.55, "Healthcare", 0.45, "a"),  # margin 0.10, same text as 1
        4: ("Healthcare", 0.65, "Sales", 0.35, "c"),  # margin 0.30
        5: ("Healthcare", 0.90, None, None, "d"),  # margin 0.90
        6: ("Education", 0.70, "Sales", 0.30, "e"),  # margin 0.40
    }
    return pd.DataFrame([
        {"posting_id": pid, "title": f"t{pid}", "predicted_category": c,
         "category_source": "imputed", "imputation_confidence": s,
         "runner_up_category": r, "runner_up_share": rs, "text_key": text}
        for pid, (c, s, r, rs, text) in rows.items()
    ])


@pytest.mark.parametrize(("rule", "order"), [
    ("least_confident", [2, 1, 3, 4, 6, 5]),
    ("smallest_margin", [1, 3, 2, 4, 6, 5]),
    ("one_per_duplicate", [1, 2, 4, 6, 5, 3]),
    ("spread_over_categories", [1, 4, 6, 2, 5, 3]),
])
def test_each_rule_orders_the_queue(rule, order):
    queue = review_queue(imputed(), rule)
    assert queue["posting_id"].tolist() == order
    assert queue["priority"].tolist() == [1, 2, 3, 4, 5, 6]


def test_low_recall_weighs_the_margin_by_how_often_the_model_finds_guess_or_runner_up():
    # Healthcare found 1 time in 4: postings with Healthcare as guess or runner-up have their
    # margins cut to a quarter and come before Education's (margin 0.40, both found always).
    queue = review_queue(imputed(), "low_recall_margin", {"Sales": 1.0, "Healthcare": 0.25})
    assert queue["posting_id"].tolist() == [1, 3, 2, 4, 5, 6]
    assert "the model finds 25% of one of them" in queue.set_index("posting_id").loc[2, "reason"]


def test_reasons_say_guess_runner_up_margin_and_repeats():
    queue = review_queue(imputed(), "one_per_duplicate").set_index("posting_id")
    assert queue.loc[1, "reason"] == "Sales 50% vs Healthcare 45% (margin 0.05)"
    assert queue.loc[5, "reason"] == "Healthcare 90% with no runner-up (margin 0.90)"
    assert queue.loc[3, "reason"].endswith("; the same text is earlier in the queue")


def test_recall_by_category_from_a_confusion_matrix():
    confusion = pd.DataFrame([[3, 1], [2, 2]], index=["Sales", "Healthcare"],
                             columns=["Sales", "Healthcare"])
    assert recall_by_category(confusion) == {"Sales": 0.75, "Healthcare": 0.5}
    assert recall_by_category(None) == {}


def test_an_unknown_rule_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown review rule 'biggest_first'"):
        review_queue(imputed(), "biggest_first")
    assert len(RULES) == 5


def test_ties_go_to_the_smaller_posting_id_whatever_the_input_order():
    frame = imputed()
    frame.loc[frame["posting_id"] == 6, "imputation_confidence"] = 0.40  # ties with posting 2
    shuffled = frame.sample(frac=1, random_state=3)
    assert review_queue(shuffled, "least_confident")["posting_id"].tolist()[:2] == [2, 6]


@pytest.mark.parametrize("rule", RULES)
def test_unclassified_postings_lead_the_queue_in_every_rule(rule):
    judged = imputed()
    judged.loc[judged["posting_id"].isin([5, 6]), "category_source"] = "unclassified"
    queue = review_queue(judged, rule)
    assert queue["posting_id"].tolist()[:2] == [6, 5]  # margin 0.40 before 0.90
    assert queue["unclassified"].tolist()[:2] == [True, True]
    assert not queue["unclassified"].iloc[2:].any()
    assert queue["reason"].iloc[0].startswith("Unclassified (not sure enough to impute): Education 70%")
    assert queue.set_index("posting_id").loc[5, "category"] == "Healthcare"  # the guess, pre-filled


def test_a_queue_without_a_model_is_written_with_declared_types():
    """No model: every guess is None. Typed from its values, `category` was DuckDB's NULL type
    (the cause of issue 29's silver failure), and a later queue with guesses could not be cast."""
    import duckdb

    from careerpulse_assets.review.queue import queue_table, unguessed_queue

    unlabelled = pd.DataFrame({"posting_id": [3, 1], "title": ["Nurse", "Welder"],
                               "publication_date": pd.to_datetime(["2026-01-02", "2026-01-01"],
                                                                  utc=True)})
    queue = queue_table(unguessed_queue(unlabelled))
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE review_queue AS SELECT * FROM queue")
        types = dict(connection.execute("SELECT column_name, data_type FROM "
                                        "information_schema.columns").fetchall())
        connection.execute("INSERT INTO review_queue (posting_id, category) VALUES (5, 'Sales')")
    assert types["category"] == "VARCHAR" and types["runner_up_category"] == "VARCHAR"
    assert types["unclassified"] == "BOOLEAN" and types["imputation_confidence"] == "DOUBLE"
