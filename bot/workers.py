"""Background worker threads that drain the database queues.

Each worker calls its step function until it reports no work, then waits for
a wake-up (new work queued in this process) or its poll interval (work queued
by another replica, retries coming due).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, name: str, step: Callable[[], int], *, poll: float = 1.0,
                 idle_wait: Callable[[], float] | None = None) -> None:
        self.name = name
        self.step = step
        self.poll = poll
        self.idle_wait = idle_wait
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"carebot-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.step()
            except Exception:  # noqa: BLE001 - a worker must outlive one bad step
                log.exception("worker %s step failed", self.name)
                handled = 0
            if handled:
                continue
            wait = self.poll if self.idle_wait is None else min(self.poll, self.idle_wait())
            self.wake.wait(wait)
            self.wake.clear()


class Workers:
    """The set of workers a process runs; ``notify(kind)`` wakes one."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Worker] = {}

    def add(self, kind: str, worker: Worker) -> None:
        self._by_kind[kind] = worker

    def notify(self, kind: str) -> None:
        worker = self._by_kind.get(kind)
        if worker is not None:
            worker.wake.set()

    def start(self) -> None:
        for worker in self._by_kind.values():
            worker.start()

    def stop(self) -> None:
        for worker in self._by_kind.values():
            worker.stop()
