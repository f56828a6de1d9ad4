"""People in the loop: reviewers' label files, the review queue's order, `make review`'s label
file (handout), the category taxonomy (muse_categories.yaml) and CSV cells no spreadsheet
evaluates."""
