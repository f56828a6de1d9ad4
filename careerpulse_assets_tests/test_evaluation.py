import numpy as np
import pandas as pd
import pytest

from careerpulse_assets.classification.evaluation import (
    any_listed_label,
    bootstrap_intervals,
    confusion_table,
    evaluate,
    evaluation_set,
    knn_method,
    labelled_changes,
    labelled_set,
    logistic_regression_method,
    most_confused_pairs,
    reliability_table,
    time_split,
)
from careerpulse_assets.ingestion.postings import silver_row
from careerpulse_assets.classification.model_selection import (
    SELECTION_MIN_PER_CATEGORY,
    KnnGrid,
    NotEnoughLabels,
    selection_sample,
)

from .muse_fixtures import synthetic_postings


@pytest.fixture
def silver():
    return pd.DataFrame([silver_row(i) for i in synthetic_postings(per_category=14)])


def test_reposts_are_removed_before_splitting_and_rare_categories_set_aside(silver):
    repost = silver.iloc[[0]].assign(posting_id=1)  # same text, new id
    rare = silver.iloc[1:4].assign(category="Legal Services", description_text=lambda d: d.index.astype(str))
    labelled = labelled_set(pd.concat([silver, repost, rare]), min_postings=7)
    assert labelled.reposts_removed == 1
    assert labelled.excluded_categories == {"Legal Services": 3}
    assert not labelled.postings.duplicated(["title", "description_text"]).any()
    assert "Legal Services" not in set(labelled.labels)


def test_one_category_is_not_enough(silver):
    silver["category"] = np.where(silver["category"].notna(), "Sales", None)
    with pytest.raises(NotEnoughLabels, match="at least 2 categories"):
        labelled_set(silver)


def test_row_hashes_follow_the_data_not_the_row_order(silver):
    base = labelled_set(silver).row_hashes
    assert (labelled_set(silver.iloc[::-1]).row_hashes == base).all()
    relabelled = silver.copy()
    first_labelled = relabelled["category"].first_valid_index()
    relabelled.loc[first_labelled, "category"] = "Sales" if relabelled.loc[first_labelled, "category"] != "Sales" else "Healthcare"
    assert not np.array_equal(labelled_set(relabelled).row_hashes, base)


def test_time_split_tests_on_the_newest_postings(silver):
    labelled = labelled_set(silver)
    train, test = time_split(labelled)
    dates = labelled.postings["publication_date"]
    assert len(test) == int(np.ceil(len(dates) * 0.2))
    assert dates.iloc[train].max() <= dates.iloc[test].min()


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y_true = rng.choice(["a", "b", "c"], 300)
    y_pred = np.where(rng.random(300) < 0.8, y_true, "a")
    intervals = bootstrap_intervals(y_true, y_pred, resamples=300)
    accuracy = (y_true == y_pred).mean()
    low, high = intervals["accuracy"]
    assert low < accuracy < high and high - low < 0.15


def test_any_listed_label_counts_a_second_listed_category_as_right():
    truth = any_listed_label(
        np.array(["Data", "Data"]), np.array(["Engineering", "Sales"]),
        pd.Series([["Data", "Engineering"], ["Data"]]),
    )
    assert truth.tolist() == ["Engineering", "Data"]


def test_most_confused_pairs_add_both_directions():
    confusion = confusion_table(
        np.array(["a", "a", "b", "b", "c"]), np.array(["b", "a", "a", "b", "a"])
    )
    assert most_confused_pairs(confusion)[0] == {"pair": "a / b", "errors": 2}


def test_reliability_table_buckets_by_confidence():
    table = reliability_table(
        np.array(["a", "a", "b", "b"]), np.array(["a", "b", "b", "b"]),
        np.array([0.3, 0.6, 0.95, 1.0]),
    )
    assert table["postings"].tolist() == [1, 1, 0, 2]
    assert table["accuracy"].tolist()[:2] == [1.0, 0.0] and table["accuracy"].iloc[3] == 1.0


def test_evaluate_scores_the_knn_and_the_logistic_regression_on_the_same_split(silver):
    labelled = labelled_set(silver)
    knn = evaluate(labelled, knn_method(KnnGrid(ks=(3, 5), prior_alphas=(0.0,))), "holdout")
    logreg = evaluate(labelled, logistic_regression_method, "holdout")
    assert knn.n_test == logreg.n_test == int(np.ceil(len(labelled.postings) * 0.2))
    assert knn.metrics["accuracy"] >= 0.9
    assert knn.per_class["support"].sum() == knn.n_test
    assert knn.confusion.to_numpy().sum() == knn.n_test
    assert knn.reliability["postings"].sum() == knn.n_test
    low, high = knn.intervals["macro_f1"]
    assert low <= knn.metrics["macro_f1"] <= high
    assert "holdout_macro_f1_ci_low" in knn.flat_metrics()
    assert knn.fitted.knn_params is not None and logreg.fitted.knn_params is None


def test_confusion_metrics_equal_scikit_learn_on_resamples():
    from careerpulse_assets.classification.evaluation import (
        _metrics,
        confusion_table,
        metrics_from_confusions,
    )

    rng = np.random.default_rng(1)
    y_true = rng.choice(["a", "b", "c", "d"], 60, p=[0.6, 0.3, 0.08, 0.02])
    y_pred = np.where(rng.random(60) < 0.7, y_true, rng.choice(["a", "b", "c", "e"], 60))
    labels = sorted(set(y_true) | set(y_pred))
    for _ in range(20):
        pick = rng.integers(0, 60, 60)
        expected = _metrics(y_true[pick], y_pred[pick])
        confusion = confusion_table(y_true[pick], y_pred[pick]).reindex(
            index=labels, columns=labels, fill_value=0
        )
        got = metrics_from_confusions(confusion.to_numpy()[None])
        for name, value in expected.items():
            assert got[name][0] == pytest.approx(value, abs=1e-12), name


def test_labelled_changes_count_new_relabelled_and_gone_postings(silver):
    before = labelled_set(silver)
    relabelled = silver.copy()
    first_labelled = relabelled["category"].notna().idxmax()
    relabelled.loc[first_labelled, "category"] = "Sales"
    relabelled = relabelled.drop(index=relabelled.index[-1])
    after = labelled_set(relabelled)
    changed, share = labelled_changes(before.row_hashes, after.row_hashes)
    gone = 1 if silver.iloc[-1]["category"] is not None else 0
    assert changed == 2 + gone
    assert share == pytest.approx(changed / len(before.postings))
    assert labelled_changes(before.row_hashes, labelled_set(silver.iloc[::-1]).row_hashes) == (0, 0.0)


def test_selection_sample_is_stratified_and_keeps_rare_categories():
    labels = pd.Series(["common"] * 9_000 + ["middle"] * 2_960 + ["rare"] * 40)
    sample = selection_sample(labels, max_postings=1_200)
    counts = labels.iloc[sample].value_counts()
    assert counts["common"] == 900 and counts["middle"] == 296
    assert counts["rare"] == min(40, SELECTION_MIN_PER_CATEGORY)
    assert len(set(sample)) == len(sample) and (np.diff(sample) > 0).all()
    assert (selection_sample(labels.head(500), max_postings=1_200) == np.arange(500)).all()


def test_evaluation_runs_on_a_stratified_sample_only_above_the_cap(silver):
    copies = [silver.assign(posting_id=silver["posting_id"] + 10_000 * n, title=silver["title"] + f" {n}")
              for n in range(5)]  # 70 postings per category, more than the 25 each keeps
    labelled = labelled_set(pd.concat(copies, ignore_index=True))
    assert evaluation_set(labelled, max_postings=len(labelled.postings)) is labelled
    sample = evaluation_set(labelled, max_postings=len(labelled.postings) // 2)
    assert len(sample.postings) < len(labelled.postings)
    assert set(sample.labels) == set(labelled.labels)  # every category is still there
    assert sample.postings["posting_id"].isin(labelled.postings["posting_id"]).all()


def test_text_keys_in_python_equal_duckdbs():
    import duckdb

    from careerpulse_assets.classification.evaluation import TEXT_KEY_SQL, text_keys

    frame = pd.DataFrame({"title": ["Nurse", None, "Café · 咖啡", "a"],
                          "description_text": ["Care\u00a0plans", "text", None, "b\x1fc"]})
    with duckdb.connect() as connection:
        connection.register("frame", frame)
        expected = connection.execute(f"SELECT {TEXT_KEY_SQL} FROM frame").fetchall()
    assert text_keys(frame).tolist() == [key for (key,) in expected]
