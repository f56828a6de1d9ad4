"""Parting a listing the API caps: which filter, which groups of values, what stays out of reach."""

import pytest

from careerpulse_assets.ingestion.partitions import (
    MAX_GROUP_VALUES,
    Sample,
    halves,
    pack,
    plan_split,
    unreachable_share,
)
from careerpulse_assets.ingestion.listings import PLAIN, Listing, posting_values

LEVELS = ("Entry Level", "Mid Level", "Senior Level", "management", "Internship")


def sample(postings, without=None, **counts):
    return Sample(postings, counts, {"category": 0, "level": 0, "location": 0, "company": 0,
                                     **(without or {})})


def test_a_listing_most_of_whose_postings_have_a_category_is_parted_by_category():
    stored = sample(1000, category={"Sales": 600, "Healthcare": 395}, without={"category": 5},
                    level={"Mid Level": 700, "Senior Level": 300})
    split = plan_split(PLAIN, 10_000, 2_000, stored, stored, known={"level": LEVELS})
    assert split.kind == "category"
    assert split.unreachable_share == pytest.approx(0.005)
    # Sales (6,000 estimated) and Healthcare (3,950) alone: each is over half the cap.
    assert split.groups == (("Sales",), ("Healthcare",))


def test_when_most_postings_have_no_category_the_listing_is_parted_by_level():
    # As in the 2025-26 sample: 170 of 244 postings without a category, every one with a level.
    stored = sample(244, category={"Sales": 40, "Healthcare": 34}, without={"category": 170},
                    level={"Mid Level": 144, "Senior Level": 90, "Entry Level": 10})
    split = plan_split(PLAIN, 407_000, 2_000, stored, stored, known={"level": LEVELS})
    assert split.kind == "level"
    assert split.unreachable_share == 0.0
    assert {v for group in split.groups for v in group} == set(LEVELS)


def test_an_override_is_used_first_and_only_its_values():
    stored = sample(1000, category={"Sales": 600, "Healthcare": 400},
                    level={"Mid Level": 700, "Senior Level": 300})
    split = plan_split(PLAIN, 10_000, 2_000, stored, stored, known={"level": LEVELS},
                       fixed={"level": ("Senior Level",)})
    assert split.kind == "level" and split.groups == (("Senior Level",),)
    assert split.unreachable_share == pytest.approx(0.7)  # the Mid Level postings


def test_values_never_seen_count_as_out_of_reach_by_good_turing():
    # 100 companies seen once each among 1,000 stored postings: about 10 % of postings belong to
    # a company nobody has seen.
    companies = {f"Company {i}": 1 for i in range(100)} | {"Big": 900}
    stored = sample(1000, company=companies)
    assert unreachable_share(stored, stored, "company", set(companies), set(), False) == 0.1
    assert unreachable_share(stored, stored, "company", set(companies), set(), True) == 0.0


def test_a_kind_that_parts_nothing_off_is_not_used_and_none_may_be_left():
    one_of_each = sample(100, level={"Mid Level": 100}, location={"New York, NY": 100},
                         company={"Acme": 100}, without={"category": 100})
    assert plan_split(PLAIN, 140, 100, one_of_each, one_of_each) is None
    # Already filtered by every kind: nothing is left to part by.
    full = Listing.of({"category": "a", "level": "b", "location": "c", "company": "d"})
    assert plan_split(full, 5_000, 2_000, one_of_each, one_of_each) is None


def test_small_values_share_a_listing_and_groups_stay_under_half_the_cap():
    sizes = {"a": 900.0, "b": 600.0, "c": 300.0, "d": 100.0, "e": 50.0, "f": 0.0}
    groups = pack(list(sizes), sizes, 1000)
    assert groups == (("a", "d", "f"), ("b", "c", "e"))  # first-fit decreasing
    assert all(sum(sizes[v] for v in g) <= 1000 for g in groups)
    many = {f"v{i}": 0.0 for i in range(400)}
    assert all(len(g) <= MAX_GROUP_VALUES for g in pack(list(many), many, 1000))


def test_values_unseen_in_the_listing_but_seen_elsewhere_are_included():
    listing = Listing.of({"level": "Mid Level"})
    here = sample(300, company={"Acme": 200, "Globex": 100})
    everywhere = sample(3000, company={"Acme": 1500, "Globex": 1000, "Initech": 500})
    split = plan_split(listing, 6_000, 2_000, here, everywhere)
    assert split.kind == "company"
    assert "Initech" in {v for group in split.groups for v in group}


def test_a_group_over_the_cap_is_halved_by_estimated_size():
    sizes = {"a": 10, "b": 9, "c": 2, "d": 1}
    assert halves(("a", "b", "c", "d"), sizes) == (("a", "d"), ("b", "c"))
    with pytest.raises(ValueError):
        halves(("a",), {})


def test_listings_name_and_filter_like_the_api():
    listing = Listing.of({"level": "Senior Level", "category": ["Sales", "Data and Analytics"]})
    assert listing.kinds == ("category", "level")
    assert listing.params() == [("category", "Data and Analytics"), ("category", "Sales"),
                                ("level", "Senior Level")]
    assert listing.label == "category=Data and Analytics&category=Sales&level=Senior Level"
    assert Listing.of({"company": "Johnson & Johnson"}).label == "company=Johnson & Johnson"
    assert Listing.from_json(listing.to_json()) == listing
    values = posting_values({"categories": [{"name": "Sales"}], "levels": [],
                             "locations": [{"name": "Remote"}], "company": {"name": "Acme"}})
    assert listing.lists({**values, "level": ("Senior Level",)})
    assert not listing.lists(values)  # no level: not in a listing filtered by level
    with pytest.raises(ValueError, match="does not filter by"):
        Listing.of({"salary": "high"})
