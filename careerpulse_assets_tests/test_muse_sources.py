import json

import pytest

from careerpulse_assets.ingestion.archive import iter_archive_pages
from careerpulse_assets.ingestion.muse_api import MuseApiError, iter_api_pages, make_session
from careerpulse_assets.resources import MuseApi

from .muse_fixtures import synthetic_postings, write_archive
from .muse_server import serve_muse

FAST = {"retries": 2, "backoff_factor": 0.01}


def test_archive_lists_are_cut_into_pages_of_twenty(tmp_path):
    items = synthetic_postings()  # 54 items
    pages = list(iter_archive_pages(write_archive(tmp_path, items)))
    assert [len(p.items) for p in pages] == [20, 20, 14]
    assert [p.page for p in pages] == [0, 1, 2]
    assert all(p.source == "archive:postings.json" and p.error is None for p in pages)


def test_archive_reads_saved_api_pages_and_quarantines_unreadable_files(tmp_path):
    (tmp_path / "page_3.json").write_text(json.dumps({"page": 3, "results": [{"id": 1}]}))
    (tmp_path / "broken.json").write_text('{"results": [')
    (tmp_path / "notes.txt").write_text("ignored")
    pages = {p.source: p for p in iter_archive_pages(tmp_path)}
    assert pages["archive:page_3.json"].page == 3
    assert pages["archive:page_3.json"].items == [{"id": 1}]
    assert pages["archive:broken.json"].error.startswith("not valid JSON")
    assert pages["archive:broken.json"].raw == '{"results": ['
    assert len(pages) == 2


def test_missing_archive_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(iter_archive_pages(tmp_path / "nowhere"))


def test_http_walks_every_page_newest_first_until_page_count():
    items = synthetic_postings()
    with serve_muse(items) as (stub, base_url):
        pages = list(iter_api_pages(base_url, session=make_session(**FAST)))
    assert [p.page for p in pages] == [0, 1, 2]
    assert len(stub.requests) == 3
    assert all("descending=true" in r for r in stub.requests)
    dates = [i["publication_date"] for p in pages for i in p.items]
    assert dates == sorted(dates, reverse=True)
    assert sorted(i["id"] for p in pages for i in p.items) == sorted(i["id"] for i in items)


def test_http_and_archive_give_the_same_raw_items(tmp_path):
    items = synthetic_postings()
    with serve_muse(items) as (_, base_url):
        over_http = [i for p in MuseApi(base_url=base_url).iter_pages() for i in p.items]
    from_archive = [
        i for p in MuseApi(archive_dir=str(write_archive(tmp_path, items))).iter_pages()
        for i in p.items
    ]
    key = lambda item: item["id"]  # noqa: E731
    assert sorted(over_http, key=key) == sorted(from_archive, key=key)


def test_max_pages_stops_the_walk():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        pages = list(iter_api_pages(base_url, max_pages=2, session=make_session(**FAST)))
    assert len(pages) == 2 and len(stub.requests) == 2


def test_server_errors_are_retried_within_bounds():
    with serve_muse(synthetic_postings()) as (stub, base_url):
        stub.faults[1] = [500, 503]
        pages = list(iter_api_pages(base_url, session=make_session(**FAST)))
        assert len(pages) == 3
        assert len(stub.requests) == 5  # page 1 answered on its third try

        stub.faults[0] = [500] * 5
        with pytest.raises(MuseApiError, match="answered 500"):
            list(iter_api_pages(base_url, session=make_session(**FAST)))
        assert len(stub.requests) == 5 + 3  # one try plus two retries, then it gives up


def test_refused_requests_name_the_request_but_never_the_key():
    with serve_muse([]) as (_, base_url):
        with pytest.raises(MuseApiError) as error:
            list(iter_api_pages(base_url + "/nope", api_key="s3cret-key",
                                session=make_session(**FAST)))
    message = str(error.value)
    assert "404" in message and "/nope/jobs?page=0" in message
    assert "s3cret-key" not in message and "api_key" not in message


def test_unreachable_api_is_an_error_without_the_key():
    with serve_muse([]) as (_, base_url):
        pass  # the server is gone: its port refuses connections
    with pytest.raises(MuseApiError) as error:
        list(iter_api_pages(base_url, api_key="s3cret-key", session=make_session(**FAST)))
    assert "ConnectionError" in str(error.value) and "s3cret-key" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_archive_files_with_a_byte_order_mark_or_an_upper_case_suffix_are_read(tmp_path):
    items = synthetic_postings()
    (tmp_path / "with_bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(items[:5]).encode())
    (tmp_path / "UPPER.JSON").write_text(json.dumps(items[5:8]))
    (tmp_path / "README.md").write_text("notes")
    pages = list(iter_archive_pages(tmp_path))
    assert sorted(p.source for p in pages) == ["archive:UPPER.JSON", "archive:with_bom.json"]
    assert all(p.error is None for p in pages)
    assert sum(len(p.items) for p in pages) == 8
    from careerpulse_assets.ingestion.archive import skipped_files

    assert skipped_files(tmp_path) == ["README.md"]


def test_one_item_too_deep_for_json_leaves_the_others_of_its_page_readable():
    from careerpulse_assets.ingestion.pages import UnreadableItem, parse_body

    deep = "[" * 100_000 + "]" * 100_000
    body = ('{"page": 0, "results": [{"id": 1, "name": "a, ]} b"}, {"id": 2, "x": ' + deep
            + '}, {"id": 3}], "total": 3}')
    page = parse_body(body)
    assert (page["page"], page["total"]) == (0, 3)
    assert page["results"][0] == {"id": 1, "name": "a, ]} b"} and page["results"][2] == {"id": 3}
    assert isinstance(page["results"][1], UnreadableItem)
    assert [type(x).__name__ for x in parse_body('[{"id": 1}, {"id": ' + "9" * 5000 + "}]")] == [
        "dict", "UnreadableItem"]
    with pytest.raises(ValueError):
        parse_body('{"results": [{"id": 1}, {"id": 2')  # cut short: the page is unreadable
