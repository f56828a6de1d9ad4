"""Ingestion against a loopback API that sends what a hostile world sends: poisoned items, pages
that fail, servers that lie about their page count, ignore `page`, echo the key or speak Latin-1.
Every valid posting lands once; every bad thing is quarantined with its reason; nothing stops the
walk for good and nothing leaks the key."""

import json

import duckdb
from dagster import DagsterInstance, materialize

from careerpulse_assets.assets.bronze import bronze_postings
from careerpulse_assets.assets.silver import silver_postings
from careerpulse_assets.ingestion.bronze_store import ensure_bronze_schema
from careerpulse_assets.ingestion.silver_store import update_silver
from careerpulse_assets.definitions import build_resources

from .graph import query
from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse

KEY = "k3y-echoed-by-the-server"


def ingest(settings, instance=None, full_crawl=False):
    return materialize(
        [bronze_postings, silver_postings],
        resources=build_resources(settings),
        instance=instance or DagsterInstance.ephemeral(),
        run_config={"ops": {"bronze_postings": {"config": {"full_crawl": full_crawl}}}},
        raise_on_error=False,
    )


def counts(settings):
    return query(
        settings,
        "SELECT (SELECT count(*) FROM bronze.bronze_postings) AS bronze, "
        "(SELECT count(DISTINCT posting_id) FROM bronze.bronze_postings) AS ids, "
        "(SELECT count(*) FROM silver.silver_postings) AS silver",
    ).iloc[0].tolist()


def poisoned_page(valid: list[dict]) -> bytes:
    """A page of 20: `valid` (10 items, one of them with HTML nested 300 deep) and 10 poisons,
    written as raw text because some are not even valid for Python's json module."""
    template = valid[0]
    poisons = {
        "HUGE_ID": json.dumps(dict(template, id=0)).replace('"id": 0', '"id": 99999999999999999999'),
        "ENORMOUS_ID": json.dumps(dict(template, id=0)).replace('"id": 0', '"id": ' + "9" * 5000),
        "SURROGATE": json.dumps(dict(template, id=880_002, name="Engineer \ud800")),
        "NAN": json.dumps(dict(template, id=880_003)).replace('"tags": []', '"tags": [NaN]'),
        "DEEP": '{"id": 880004, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "DATE_9999": json.dumps(dict(template, id=880_005, publication_date="9999-12-31T00:00:00Z")),
        "DATE_1970": json.dumps(dict(template, id=880_006, publication_date="1970-01-01T00:00:00Z")),
        "DATE_2099": json.dumps(dict(template, id=880_007, publication_date="2099-06-01T00:00:00Z")),
        "COMPANY": json.dumps(dict(template, id=880_008, company={"name": {"nested": "x"}})),
        "HUGE": json.dumps(dict(template, id=880_009, contents="<p>" + "x" * 1_200_000 + "</p>")),
    }
    results = ", ".join([json.dumps(item) for item in valid] + list(poisons.values()))
    return ('{"page": 0, "page_count": 2, "total": 30, "results": [' + results + "]}").encode()


def test_poisoned_items_are_quarantined_and_the_rest_of_their_page_lands(settings_for):
    items = synthetic_postings(per_category=10, unlabelled=0)  # 30 postings, 2 pages
    listing = sorted(items, key=lambda i: i["publication_date"], reverse=True)
    valid = listing[:10]
    valid[1] = dict(valid[1], contents="<div>" * 300 + "Deeply nested duties" + "</div>" * 300)
    with serve_muse(items) as (stub, base_url):
        stub.bodies[0] = [poisoned_page(valid)] * 3
        settings = settings_for(base_url=base_url)
        instance = DagsterInstance.ephemeral()
        first = ingest(settings, instance)
        assert first.success
        second = ingest(settings, instance, full_crawl=True)  # the same page again: no crash
        assert second.success
    # Page 0's 10 valid items and page 1's 10 land; each poison is quarantined once.
    assert counts(settings) == [20, 20, 20]
    reasons = query(settings, "SELECT reason FROM bronze.bronze_quarantine")["reason"].tolist()
    assert len(reasons) == 10, reasons
    expected = [
        "is outside 1 .. 2^63-1", "not readable JSON", "lone UTF-16 surrogate", "NaN or Infinity",
        "nested too deep", "9999-12-31T00:00:00+00:00 is more than 7 days after",
        "1970-01-01T00:00:00+00:00 is before 2000-01-01", "2099-06-01T00:00:00+00:00 is more",
        "company name is not a string", "over the 1,000,000-byte limit",
    ]
    for fragment in expected:
        assert any(fragment in reason for reason in reasons), fragment
    # An item with a valid id says which posting it was (the date refused, not the id).
    ids = query(settings, "SELECT posting_id, reason FROM bronze.bronze_quarantine")
    dated_2099 = ids[ids["reason"].str.contains("2099-06-01")]
    assert dated_2099["posting_id"].tolist() == [880_007]
    assert ids[ids["reason"].str.contains("outside 1 .. 2")]["posting_id"].isna().all()
    deep_html = query(settings, f"SELECT description_text FROM silver.silver_postings "
                                f"WHERE posting_id = {valid[1]['id']}")
    assert deep_html["description_text"][0] == "Deeply nested duties"


def test_a_bronze_row_silver_cannot_take_is_quarantined_and_silver_goes_on(tmp_path):
    """Rows an older version let into bronze (dated 9999) stop neither this run nor the next."""
    items = synthetic_postings(per_category=3, unlabelled=0)
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        ensure_bronze_schema(connection)
        for n, item in enumerate(items):
            if n == len(items) - 1:  # the newest bronze row, above silver's watermark
                item = dict(item, publication_date="9999-12-31T00:00:00Z")
            connection.execute(
                "INSERT INTO bronze.bronze_postings (posting_id, payload, payload_hash, source, "
                "page, fetched_at) VALUES (?, ?, ?, 'test', 0, now())",
                [item["id"], json.dumps(item), str(n)],
            )
        assert update_silver(connection).rebuilt == len(items) - 1
        assert update_silver(connection).rebuilt == 0  # re-reads the bad row, merges nothing, ends
        silver = connection.execute("SELECT count(*) FROM silver.silver_postings").fetchone()[0]
        quarantined = connection.execute("SELECT reason FROM bronze.bronze_quarantine").fetchall()
    assert silver == len(items) - 1
    assert len(quarantined) == 1 and "not merged into silver" in quarantined[0][0]


def test_a_page_unreadable_once_is_fetched_again_by_the_next_run(settings_for):
    items = synthetic_postings(per_category=30, unlabelled=0)  # 90 postings, 5 pages
    with serve_muse(items) as (stub, base_url):
        stub.faults[1] = ["truncated"] * 3  # page 1 stays broken for one walk
        settings = settings_for(base_url=base_url)
        instance = DagsterInstance.ephemeral()
        assert ingest(settings, instance).success
        assert counts(settings) == [70, 70, 70]
        # The walk read an unreadable page, so it is not complete: the next one walks it all.
        assert ingest(settings, instance).success
        assert counts(settings) == [90, 90, 90]
        stub.requests.clear()
        assert ingest(settings, instance).success
        assert len(stub.requests) == 1  # now complete: the next run stops at page 0


def test_a_page_count_that_lies_does_not_end_the_walk(settings_for):
    items = synthetic_postings(per_category=30, unlabelled=0)  # 90 postings, 5 pages
    with serve_muse(items) as (stub, base_url):
        stub.page_count_lie = 1
        settings = settings_for(base_url=base_url)
        assert ingest(settings).success
        assert len(stub.requests) == 5
    assert counts(settings) == [90, 90, 90]


def test_a_server_that_ignores_page_is_stopped_not_walked_for_ever(settings_for):
    items = synthetic_postings(per_category=30, unlabelled=0)
    with serve_muse(items) as (stub, base_url):
        stub.ignores_page = True
        settings = settings_for(base_url=base_url)
        assert ingest(settings).success
        assert len(stub.requests) == 2
    reasons = query(settings, "SELECT reason FROM bronze.bronze_quarantine")["reason"].tolist()
    assert reasons == ["unreadable page: page 1 repeats page 0: the server ignores `page`; "
                       "walk stopped"]
    complete = query(settings, "SELECT complete FROM bronze.bronze_crawls")["complete"].tolist()
    assert complete == [False]


def test_a_server_that_echoes_the_request_never_gets_the_key_stored_logged_or_raised(
    settings_for, monkeypatch
):
    from careerpulse_assets.ingestion.muse_api import MuseApiError, iter_api_pages, make_session

    monkeypatch.setenv("CAREERPULSE_MUSE_API_KEY", KEY)
    items = synthetic_postings(per_category=30, unlabelled=0)
    with serve_muse(items) as (stub, base_url):
        stub.echo_url = True
        stub.faults[2] = ["truncated"] * 3
        settings = settings_for(base_url=base_url, muse_api_key=KEY)
        instance = DagsterInstance.ephemeral()
        result = ingest(settings, instance)
        assert result.success
        assert all(f"api_key={KEY}" in request for request in stub.requests)
        try:
            list(iter_api_pages(base_url + "/wrong", api_key=KEY, session=make_session(0, 0.01)))
        except MuseApiError as error:
            raised = str(error)
    assert "404" in raised and "[REDACTED]" in raised and KEY not in raised
    stored = query(
        settings,
        "SELECT (SELECT string_agg(payload, '') FROM bronze.bronze_postings) || "
        "(SELECT string_agg(coalesce(raw, '') || reason, '') FROM bronze.bronze_quarantine) AS s",
    )["s"][0]
    assert "api_key=[REDACTED]" in stored and KEY not in stored
    logged = " ".join(str(entry.user_message) + str(entry.dagster_event)
                      for entry in instance.all_logs(result.run_id))
    assert KEY not in logged


def test_a_latin1_body_is_read_as_latin1_and_said_so(settings_for):
    items = synthetic_postings(per_category=3, unlabelled=0)
    item = dict(items[0], name="Café Barista")
    body = json.dumps({"page": 0, "page_count": 1, "results": [item]}, ensure_ascii=False)
    with serve_muse(items) as (stub, base_url):
        stub.bodies[0] = [body.encode("latin-1")]
        settings = settings_for(base_url=base_url)
        instance = DagsterInstance.ephemeral()
        result = ingest(settings, instance)
    assert result.success
    title = query(settings, f"SELECT title FROM silver.silver_postings WHERE posting_id = {item['id']}")
    assert title["title"][0] == "Café Barista"
    warnings = [str(entry.user_message) for entry in instance.all_logs(result.run_id)]
    assert any("not UTF-8 (byte 0xe9" in line and "read as Latin-1" in line for line in warnings)


def test_escaped_titles_and_plain_text_descriptions_reach_silver_readable(settings_for):
    """Postings from another board: titles escaped twice, a description typed as plain text."""
    items = synthetic_postings(per_category=3, unlabelled=0)
    items[0] = dict(items[0], name="Backend Engineer &amp;#8211; Payments")
    items[1] = dict(items[1], name="R&amp;D Nurse", contents="Ward: <ten beds & a team of six.\n"
                    + "Nights and weekends, rotating. " * 40)
    with serve_muse(items) as (_, base_url):
        settings = settings_for(base_url=base_url)
        result = ingest(settings)
    assert result.success
    rows = query(settings, "SELECT posting_id, title, description_text, description_note "
                           "FROM silver.silver_postings").set_index("posting_id")
    assert rows.loc[items[0]["id"], "title"] == "Backend Engineer – Payments"
    nurse = rows.loc[items[1]["id"]]
    assert nurse["title"] == "R&D Nurse"
    assert nurse["description_text"].startswith("Ward: <ten beds & a team of six. Nights")
    assert len(nurse["description_text"]) > 1_200
    assert nurse["description_note"] == "plain text: no HTML tags, read as text"
    silver = next(e.step_materialization_data.materialization.metadata
                  for e in result.get_asset_materialization_events()
                  if e.asset_key.to_user_string() == "silver_postings")
    assert silver["descriptions_plain_text"].value == 1
    assert silver["descriptions_misparsed"].value == 0


def test_silver_built_before_titles_were_decoded_is_rebuilt_once(tmp_path):
    items = synthetic_postings(per_category=3, unlabelled=0)
    items[0] = dict(items[0], name="Backend Engineer &amp;#8211; Payments")
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        ensure_bronze_schema(connection)
        for n, item in enumerate(items):
            connection.execute(
                "INSERT INTO bronze.bronze_postings (posting_id, payload, payload_hash, source, "
                "page, fetched_at) VALUES (?, ?, ?, 'test', 0, now())",
                [item["id"], json.dumps(item), str(n)],
            )
        update_silver(connection)
        # Silver as an earlier version left it: no description_note, the title as listed.
        connection.execute("ALTER TABLE silver.silver_postings DROP COLUMN description_note")
        connection.execute("UPDATE silver.silver_postings SET title = ? WHERE posting_id = ?",
                           [items[0]["name"], items[0]["id"]])
        assert update_silver(connection).rebuilt == len(items)
        assert update_silver(connection).rebuilt == 0
        title = connection.execute("SELECT title FROM silver.silver_postings WHERE posting_id = ?",
                                   [items[0]["id"]]).fetchone()[0]
    assert title == "Backend Engineer – Payments"
