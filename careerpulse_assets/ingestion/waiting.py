"""Iterating something slow (pages over HTTP) while being told when the next item is late."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


class Waiting:
    """Yielded in place of an item while the next one is late."""


WAITING = Waiting()


def with_waits(items: Iterator[T], after_seconds: float) -> Iterator[T | Waiting]:
    """The items of `items`, and WAITING each time `after_seconds` pass without the next one.

    A worker thread takes the next item only when the consumer asks for it, so nothing is
    fetched that the consumer might not need: a page walk that stops early makes no extra
    request. Exceptions from `items` are raised to the consumer.
    """
    asks: queue.Queue[bool] = queue.Queue()
    answers: queue.Queue[tuple[str, object]] = queue.Queue()

    def work() -> None:
        while asks.get():
            try:
                answers.put(("item", next(items)))
            except StopIteration:
                answers.put(("end", None))
                return
            except BaseException as exc:  # handed to the consumer, raised there
                answers.put(("error", exc))
                return

    threading.Thread(target=work, daemon=True, name="careerpulse-reader").start()
    try:
        while True:
            asks.put(True)
            while True:
                try:
                    kind, value = answers.get(timeout=after_seconds)
                    break
                except queue.Empty:
                    yield WAITING
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        asks.put(False)
