"""make run's summary: one story, each figure once, what was delivered and what failed first."""

from careerpulse_assets.ops.run import _classifier_lines, _counting_lines, _postings_lines

V2 = "models:/careerpulse-knn-category/2"
CLASSIFIER = {
    "model_version": V2, "retrained": False, "reason": "labels unchanged", "chosen": "k=5",
    "quality_gate": "fails on macro-F1: ...", "bars": "accuracy ≥ 0.75 and macro-F1 ≥ 0.70",
    "oof_accuracy": 0.89, "oof_accuracy_ci_low": 0.87, "oof_accuracy_ci_high": 0.91,
    "oof_macro_f1": 0.63, "oof_macro_f1_ci_low": 0.57, "oof_macro_f1_ci_high": 0.68,
    "oof_postings": 1378, "imputation_threshold": 0.57, "categories_withheld": {"Sales": 0.6},
    "written_precision": 0.91, "written_precision_ci_low": 0.9, "written_precision_ci_high": 0.92,
    "written_coverage": 0.93, "written_coverage_ci_low": 0.92, "written_coverage_ci_high": 0.94,
    "labelled": {"learnable": 1345, "reposts_set_aside": 48, "min_postings": 7,
                 "too_rare_to_learn": {"Sales": 5, "Retail": 1}},
    "reviewer_labels_in_training": 3, "retrained_in_run": False,
}


def test_the_model_line_names_the_version_in_service_and_the_gate_its_verdict():
    lines = _classifier_lines(CLASSIFIER)
    assert lines[0].startswith(f"  model              {V2} in service, reused (labels unchanged)")
    assert "fails on macro-F1 (bars: accuracy ≥ 0.75 and macro-F1 ≥ 0.70)" in lines[1]
    assert "accuracy 0.890 [0.870–0.910], macro-F1 0.630 [0.570–0.680]" in lines[1]
    promoted_elsewhere = _classifier_lines(CLASSIFIER | {"challenger": "models:/m/3",
                                                        "promotion": "worse than champion"})
    assert promoted_elsewhere[1].startswith("  challenger         models:/m/3 not promoted: worse")


def test_the_labelled_count_names_its_parts_and_why_reviewers_labels_were_not_all_learnt():
    counts = {"silver": 1600, "from the API": 1420, "from reviewers": 6, "without": 174}
    silver = {"reviewer_labels": 6, "label_rows_quarantined": 1, "label_rows_awaiting_review": 2}
    lines = _postings_lines(counts, CLASSIFIER, silver)
    assert lines[0] == ("  postings           1,600 in silver: 1,426 with a category (1,420 from "
                        "the API, 6 from reviewers), 174 without")
    assert lines[1] == ("  labelled           1,345 to learn from: of the 1,426, 48 set aside as "
                        "reposts of another labelled text, 6 in 2 categories too rare to learn "
                        "(fewer than 7 each)")
    assert "the model in service learnt 3 of them (not retrained in this run" in lines[2]


def test_one_coverage_of_the_postings_without_a_category_and_the_estimate_apart():
    imputed = {"postings_without_category": 172, "imputed_postings": 34,
               "unclassified_postings": 138, "coverage": 34 / 172, "count_method": "PACC",
               "expected_count_error": 0.574}
    mix = [("Healthcare", 62.2, 43.6, 80.8), ("Sales", 0.1, 0.0, 0.4)]
    counts, per_posting = _counting_lines(imputed, mix, CLASSIFIER)
    assert counts.startswith("  counts             172 postings without a category counted by "
                             "PACC, expected error 0.574")
    assert "Healthcare 62 [44–81]" in counts and "Sales" not in counts  # under half a posting
    assert per_posting.startswith("  per posting        34 of 172 postings without a category "
                                  "get one written (coverage 19.8%), 138 Unclassified; on "
                                  "labelled postings the rule")
    assert per_posting.count("coverage") == 2  # the real one, and the estimate, labelled apart
