import time

import pytest

from careerpulse_assets.ingestion.waiting import WAITING, with_waits


def test_items_come_through_in_order_with_waiting_marks_while_one_is_late():
    def slow_second():
        yield 1
        time.sleep(0.35)
        yield 2

    seen = list(with_waits(slow_second(), after_seconds=0.1))
    assert [x for x in seen if x is not WAITING] == [1, 2]
    assert seen[0] == 1 and seen[-1] == 2
    assert 2 <= seen.count(WAITING) <= 4


def test_nothing_is_fetched_that_the_consumer_did_not_ask_for():
    fetched = []

    def pages():
        for n in range(10):
            fetched.append(n)
            yield n

    walk = with_waits(pages(), after_seconds=1.0)
    assert next(walk) == 0 and next(walk) == 1
    walk.close()
    time.sleep(0.1)
    assert fetched == [0, 1]


def test_an_error_while_fetching_reaches_the_consumer():
    def failing():
        yield 1
        raise ConnectionError("the API went away")

    walk = with_waits(failing(), after_seconds=1.0)
    assert next(walk) == 1
    with pytest.raises(ConnectionError, match="went away"):
        next(walk)
