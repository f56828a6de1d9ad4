from datetime import datetime, timezone

import pytest

from careerpulse_assets.ingestion.postings import (
    InvalidPosting,
    check_item,
    html_to_text,
    payload_hash,
    posting_id,
    silver_row,
)

from .muse_fixtures import edge_case_page


def results():
    return edge_case_page()["results"]


@pytest.mark.parametrize("raw, expected", [(52288, 52288), ("52288", 52288), (" 7 ", 7), (3.0, 3)])
def test_an_id_as_number_or_string_is_the_same_posting(raw, expected):
    assert posting_id({"id": raw}) == expected


@pytest.mark.parametrize("raw", [None, True, "abc", 1.5, ""])
def test_ids_that_cannot_be_postings_are_rejected(raw):
    with pytest.raises(InvalidPosting):
        posting_id({"id": raw})


def test_html_to_text_decodes_entities_and_collapses_whitespace():
    text = html_to_text(results()[0]["contents"])
    assert text == (
        "Build pipelines & models for R&D. Python SQL <3 Café — remote"
    )


def test_html_to_text_of_nothing_is_empty():
    assert html_to_text(None) == "" and html_to_text("") == ""


def test_silver_row_flattens_a_multi_category_posting():
    row = silver_row(results()[0])
    assert row["posting_id"] == 9000001
    assert row["title"] == "Senior Data Engineer"
    assert row["category"] == "Data and Analytics"
    assert row["categories"] == ["Data and Analytics", "Software Engineering"]
    assert row["level"] == "Senior Level"
    assert row["locations"] == ["New York, NY", "Flexible / Remote"]
    assert row["company"] == "Acme Analytics"
    assert row["publication_date"] == datetime(2026, 3, 2, 23, 30, tzinfo=timezone.utc)


def test_unknown_or_missing_category_is_null_and_dates_become_utc():
    nurse, account_exec = silver_row(results()[1]), silver_row(results()[2])
    assert nurse["category"] is None and nurse["categories"] == ["Unknown"]
    assert nurse["posting_id"] == 9000002
    # +02:00 on 1 March 08:00 is 06:00 UTC; a date without offset is taken as UTC.
    assert nurse["publication_date"] == datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc)
    assert account_exec["category"] is None and account_exec["level"] == "Entry Level"
    assert account_exec["publication_date"] == datetime(2026, 2, 27, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "index, reason",
    [(3, "categories is not a list"), (4, "missing id"), (5, "publication_date is not ISO-8601")],
)
def test_items_that_cannot_be_postings_say_why(index, reason):
    with pytest.raises(InvalidPosting, match=reason):
        check_item(results()[index])


def test_contents_that_is_not_a_string_is_rejected():
    item = dict(results()[0], contents={"html": "<p>x</p>"})
    with pytest.raises(InvalidPosting, match="contents is not a string"):
        check_item(item)


def test_payload_hash_ignores_key_order_but_not_content():
    item = results()[0]
    reordered = dict(reversed(list(item.items())))
    assert payload_hash(reordered) == payload_hash(item)
    assert payload_hash(dict(item, name="Staff Data Engineer")) != payload_hash(item)


@pytest.mark.parametrize("raw", [0, -5, 2**63, 99999999999999999999, 1e300, "٣"])
def test_ids_outside_a_bigint_or_not_ascii_digits_are_rejected(raw):
    with pytest.raises(InvalidPosting):
        posting_id({"id": raw})


@pytest.mark.parametrize("date, ok", [
    ("2026-03-01T00:00:00Z", True), ("2000-01-01T00:00:00Z", True),
    ("1999-12-31T23:59:59Z", False), ("1970-01-01T00:00:00Z", False),
    ("2026-03-08T00:00:00Z", True), ("2026-03-09T00:00:01Z", False),
    ("9999-12-31T00:00:00Z", False), ("0001-01-01T00:00:00+01:00", False),
])
def test_publication_dates_must_lie_between_2000_and_a_week_after_fetching(date, ok):
    item = dict(results()[0], publication_date=date)
    fetched = datetime(2026, 3, 2, tzinfo=timezone.utc)
    if ok:
        assert check_item(item, fetched) == 9000001
    else:
        with pytest.raises(InvalidPosting):
            check_item(item, fetched)


def test_html_nested_deeper_than_libxml2_reads_is_still_read():
    html = "<div>" * 300 + "<p>Deep &amp; <b>wide</b></p><script>x()</script> text" + "</div>" * 300
    assert html_to_text(html) == "Deep & wide text"


# --- descriptions that are plain text, and titles escaped twice (issue 27) --------------------

DUTIES = [
    "We are hiring a backend engineer for our payments platform.",
    "Team: <ten engineers and two designers, shipping weekly & reviewing every change.",
    *[f"Duty {n}: design, build and operate services that move money for millions of people "
      f"every day, with tests, code review and on-call shared fairly." for n in range(24)],
]


def twins() -> tuple[dict, dict]:
    """One posting whose `contents` is HTML, and its twin whose `contents` is the same text
    typed as plain text (3,400 characters, a `<` typed as less-than on its second line)."""
    from html import escape

    html = dict(results()[1], contents="".join(f"<p>{escape(line)}</p>" for line in DUTIES))
    plain = dict(results()[1], id=9000099, contents="\n\n".join(DUTIES))
    return html, plain


def test_a_plain_text_description_keeps_its_text_and_says_it_was_plain_text():
    html, plain = twins()
    assert len(plain["contents"]) > 3_000
    html_row, plain_row = silver_row(html), silver_row(plain)
    # Read as HTML, the `<` took everything after it: 65 of 3,611 characters were kept.
    assert len(plain_row["description_text"]) == len(" ".join(plain["contents"].split()))
    assert plain_row["description_text"] == html_row["description_text"]
    assert "<ten engineers and two designers" in plain_row["description_text"]
    assert plain_row["description_note"] == "plain text: no HTML tags, read as text"
    assert html_row["description_note"] is None


def test_html_that_loses_most_of_its_text_to_the_parser_is_read_without_it_and_flagged():
    from html import escape

    # One paragraph, and in it a `<` the employer's editor did not escape.
    html = dict(results()[1], contents=f"<p>{escape(' '.join(DUTIES))}</p><p>Apply now.</p>")
    stray = dict(html, contents=html["contents"].replace("&lt;ten", "<ten"))
    row = silver_row(stray)
    assert row["description_text"] == silver_row(html)["description_text"]
    assert len(row["description_text"]) > 3_000
    assert row["description_note"].startswith("the HTML parser kept ")
    assert row["description_note"].endswith("characters of text: read by removing the tags "
                                            "instead")


@pytest.mark.parametrize("raw, title", [
    ("Senior Engineer &amp;#8211; Payments", "Senior Engineer – Payments"),  # escaped twice
    ("R&amp;D Lead &#x2013; Caf&eacute;", "R&D Lead – Café"),
    ("Q&A Analyst, AT&T, R&D &notes", "Q&A Analyst, AT&T, R&D &notes"),  # no `;`: text
    ("Data &amp;amp;amp; AI", "Data & AI"),
])
def test_titles_with_html_entities_are_decoded_once_or_however_often_they_were_escaped(raw, title):
    assert silver_row(dict(results()[1], name=raw))["title"] == title


def test_html_sent_escaped_is_unescaped_and_read_as_html():
    from html import escape

    html, _ = twins()
    escaped = dict(html, contents=escape(html["contents"]))  # "&lt;p&gt;We are hiring ..."
    row = silver_row(escaped)
    assert row["description_text"] == silver_row(html)["description_text"]
    assert row["description_note"] == "HTML sent escaped (&lt;p&gt;): unescaped and read as HTML"
