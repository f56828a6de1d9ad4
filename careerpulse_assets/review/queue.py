"""What to label first: the postings the model judged, ordered by how much a reviewer's label
would help. Postings it left `Unclassified` (confidence under the threshold, a category it does
not impute, or no model allowed to impute) come first: nothing else gives them a category.

Plain functions over a frame of judged postings (posting_id, title, predicted_category,
category_source, imputation_confidence, runner_up_category, runner_up_share, text_key); the
`review_queue` asset wires them. The rules, all measured against labelling postings drawn at random
(`benchmarks/review_queue.py`, BENCHMARKS.md): every rule's first 30 hold about four times as many
wrong guesses as 30 random postings (16.7 vs 3.9 on the shared postings), so labels there correct
the most imputations; none of them teaches the model the other postings better than random labels
do. `one_per_duplicate` is the default: as good as the best on both counts, and it never spends two
labels on one text.

- `least_confident`: the lowest share of neighbour votes first;
- `smallest_margin`: the smallest gap between the winner's and the runner-up's share first (a
  posting torn between two categories is where one label moves a boundary);
- `low_recall_margin`: the margin, times the lower out-of-fold recall of the guess and the
  runner-up (a category the model often misses is usually the runner-up of its missed postings,
  so they are reviewed sooner);
- `one_per_duplicate`: `smallest_margin`, but a text already in the queue (reposts share title and
  description) goes to the end: one label of a text teaches what all its copies would;
- `spread_over_categories`: `one_per_duplicate` taken in turns over the predicted categories (the
  smallest margin of each category, then the second smallest of each, ...), so the first labels
  are not all spent on the border between the two biggest categories.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa

from ..ops.duckdb_file import declared_table

# The postings the model in service predicted a category for (imputed or left Unclassified),
# with what the queue orders them by; the text key (reposts share title and description) and
# the link are silver's ({key_and_link}: silver_store.key_and_link_sql).
PREDICTED_SQL = """
SELECT i.posting_id, i.title, i.predicted_category, i.category_source, i.imputation_confidence,
       i.runner_up_category, i.runner_up_share, {key_and_link}
FROM silver.imputed_silver AS i
JOIN silver.silver_postings AS s USING (posting_id)
WHERE i.predicted_category IS NOT NULL
"""
# Postings without a category, for a queue while no model can be trained.
UNLABELLED_SQL = """
SELECT s.posting_id, s.title, s.publication_date, {key_and_link}
FROM silver.silver_postings AS s
WHERE s.category IS NULL
"""

RULES = ("least_confident", "smallest_margin", "low_recall_margin", "one_per_duplicate",
         "spread_over_categories")
DEFAULT_RULE = "one_per_duplicate"
# `category` is the model's guess (what `make review` pre-fills), `unclassified` whether it was
# left out of the imputations.
QUEUE_COLUMNS = ["posting_id", "priority", "title", "category", "unclassified",
                 "imputation_confidence", "runner_up_category", "runner_up_share", "reason"]
# The table's declared types: with no model every `category` is None, and a type inferred from
# the values would be DuckDB's NULL type (issue 29).
QUEUE_TYPES = {"posting_id": pa.int64(), "priority": pa.int64(), "title": pa.string(),
               "category": pa.string(), "unclassified": pa.bool_(),
               "imputation_confidence": pa.float64(), "runner_up_category": pa.string(),
               "runner_up_share": pa.float64(), "reason": pa.string(), "link": pa.string()}


def queue_table(queue: pd.DataFrame) -> pa.Table:
    """A queue of review_queue or unguessed_queue (its `link` column optional) as the Arrow
    table `silver.review_queue` is written from, every column of a declared type."""
    types = {name: kind for name, kind in QUEUE_TYPES.items()
             if name != "link" or "link" in queue}
    return declared_table(queue, types)


def recall_by_category(confusion: pd.DataFrame | None) -> dict[str, float]:
    """Recall of each true category from a confusion matrix (true × predicted)."""
    if confusion is None or confusion.empty:
        return {}
    support = confusion.sum(axis=1)
    hits = pd.Series(np.diag(confusion.reindex(columns=confusion.index, fill_value=0)),
                     index=confusion.index)
    return {str(c): float(hits[c] / support[c]) for c in confusion.index if support[c] > 0}


def review_queue(
    judged: pd.DataFrame, rule: str = DEFAULT_RULE, recall: dict[str, float] | None = None,
    not_imputed: Collection[str] = (),
) -> pd.DataFrame:
    """The postings of `judged`, priority 1 first, each with the reason for its place: the
    Unclassified ones first, each part in the order of `rule` (a repeated text after all).
    `not_imputed`: the categories the model in service does not impute (its F1 in them is under
    the bar), which the reason of a posting guessed in one of them names."""
    if rule not in RULES:
        raise ValueError(f"unknown review rule {rule!r}; the rules are {', '.join(RULES)}")
    queue = judged.reset_index(drop=True).copy()
    queue["category"] = queue["predicted_category"]
    queue["unclassified"] = (queue["category_source"] == "unclassified").to_numpy()
    confidence = queue["imputation_confidence"].astype(float)
    share = queue["runner_up_share"].astype(float).fillna(0.0)
    margin = confidence - share
    recall = recall or {}
    category_recall = np.minimum(
        *(queue[column].map(recall).where(queue[column].isin(list(recall)), 1.0).astype(float)
          for column in ("category", "runner_up_category")))
    if rule == "least_confident":
        score = confidence
    elif rule == "low_recall_margin":
        score = margin * category_recall
    else:
        score = margin
    repeat = np.zeros(len(queue), dtype=bool)
    if rule in ("one_per_duplicate", "spread_over_categories") and "text_key" in queue:
        order = np.lexsort((queue["posting_id"].to_numpy(), score.to_numpy()))
        repeat[order] = queue["text_key"].iloc[order].duplicated().to_numpy()
    # Ties go to the smaller posting id, so the queue is the same from run to run.
    queue = queue.assign(repeat=repeat, score=score, margin=margin, recall=category_recall)
    queue = queue.sort_values(["repeat", "score", "posting_id"], kind="stable",
                              ignore_index=True)
    queue["turn"] = (queue.groupby(["repeat", "unclassified", "category"]).cumcount()
                     if rule == "spread_over_categories" else 0)
    queue = queue.assign(imputed=~queue["unclassified"]).sort_values(
        ["repeat", "imputed", "turn"], kind="stable", ignore_index=True)
    queue["priority"] = np.arange(1, len(queue) + 1)
    queue["reason"] = _reasons(queue, rule, not_imputed)
    return queue[QUEUE_COLUMNS + [c for c in ("link",) if c in queue]]


def unguessed_queue(unlabelled: pd.DataFrame) -> pd.DataFrame:
    """The queue while no model can be trained (labels of fewer than 2 learnable categories):
    every posting without a category, newest first, one per repeated text, no guess to check."""
    queue = unlabelled.sort_values(["publication_date", "posting_id"], ascending=[False, True],
                                   kind="stable", ignore_index=True)
    if "text_key" in queue:
        queue = queue.assign(repeat=queue["text_key"].duplicated()).sort_values(
            "repeat", kind="stable", ignore_index=True)
    queue = queue.assign(
        priority=np.arange(1, len(queue) + 1), category=None, unclassified=True,
        imputation_confidence=np.nan, runner_up_category=None, runner_up_share=np.nan,
        reason="no model yet (too few labels to learn from): any label helps, the newest first")
    return queue[QUEUE_COLUMNS + [c for c in ("link",) if c in queue]]


def _reasons(queue: pd.DataFrame, rule: str, not_imputed: Collection[str] = ()) -> list[str]:
    """Each row's reason for its place, from the columns it needs as Python lists (iterating
    the frame's rows read every column: 1.3 s of the queue's 2.3 s at 280,000 postings)."""
    columns = ["category", "imputation_confidence", "runner_up_category", "runner_up_share",
               "margin", "unclassified", "recall", "turn", "repeat"]
    return [_reason(*row, rule=rule, not_imputed=not_imputed)
            for row in zip(*(queue[column].tolist() for column in columns))]


def _reason(category, confidence, runner_up, runner_up_share, margin, unclassified, recall, turn,
            repeat, rule: str, not_imputed: Collection[str] = ()) -> str:
    runner = (f" vs {runner_up} {runner_up_share:.0%}"
              if isinstance(runner_up, str) else " with no runner-up")
    text = f"{category} {confidence:.0%}{runner} (margin {margin:.2f})"
    if unclassified and category in not_imputed:
        text = (f"Unclassified ({category} is withheld: the model's guesses of it are not "
                f"right often enough yet): {text}")
    elif unclassified:
        text = f"Unclassified (not sure enough to impute): {text}"
    if rule == "low_recall_margin":
        text += f"; the model finds {recall:.0%} of one of them"
    if rule == "spread_over_categories":
        text += f"; {category}'s number {turn + 1} in the queue"
    if repeat:
        text += "; the same text is earlier in the queue"
    return text
