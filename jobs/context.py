"""What every job gets (``JobContext``) and what it gives back (``JobResult``), and the
worker's ``Background`` thread, for a job whose reads take longer than a pass may."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.base import HelpdeskAdapter
    from escalations.bindings.base import HelpdeskBinding
    from escalations.clock import Clock
    from escalations.effects.outbox import Outbox
    from escalations.faults import FaultPoints
    from escalations.lifecycle import Lifecycle
    from escalations.mappings import Mappings
    from escalations.profile import ProcessProfile
    from escalations.settings import Settings
    from escalations.store.base import Store


@dataclass(frozen=True)
class JobContext:
    """Built once by the application layer (``escalations.app.wiring``). Jobs read through
    ``adapter``, decide, and record what to write through ``lifecycle`` and ``outbox``; the
    worker's effects step carries the writes out after each job."""

    settings: Settings
    clock: Clock
    store: Store
    adapter: HelpdeskAdapter
    binding: HelpdeskBinding
    mappings: Mappings
    outbox: Outbox
    lifecycle: Lifecycle
    faults: FaultPoints
    stop: threading.Event = field(default_factory=threading.Event)
    background: Background | None = None
    """The worker's background thread while it runs its loop (``Worker.run_forever``);
    ``None`` for a single pass (``run --once``, the commands): a job then does its work in
    the pass."""

    @property
    def profile(self) -> ProcessProfile:
        return self.mappings.profile


@dataclass
class JobResult:
    name: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def merge(self, other: JobResult) -> None:
        for key, n in other.counts.items():
            self.add(key, n)

    def summary(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()) if v)
        return shown or "nothing to do"


log = logging.getLogger(__name__)


class Background:
    """One thread of the worker's own, for a job whose reads would hold up its loop (the
    nightly report: ``jobs.reconcile``). A job hands it a task (``submit``) and returns at
    once; a later pass of the job takes the outcome (``outcome``) and writes, on the loop's
    thread, under the job's fence. One thread for the worker's life, so a store that keeps a
    connection per thread opens one more connection, not one a night. ``close`` (the worker
    stopping) makes ``stopping`` true and waits a moment for the thread: a task asks
    ``stopping`` between its requests (``connector.http.ThreadShare``).
    """

    JOIN_SECONDS = 5.0

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._closed = threading.Event()
        self._tasks: dict[str, Future[Any]] = {}
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def stopping(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()

    def submit(self, name: str, task: Callable[[], Any]) -> Future[Any]:
        """Run ``task`` on the thread, after the tasks before it; ``name``'s future."""
        future: Future[Any] = Future()
        self._tasks[name] = future
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="worker-background")
            self._thread.daemon = True  # a stop ends its task; a crash must not wait for it
            self._thread.start()
        self._queue.put((future, task))
        return future

    def running(self, name: str) -> Future[Any] | None:
        """``name``'s task, submitted and not taken yet (done or not)."""
        return self._tasks.get(name)

    def outcome(self, name: str) -> Future[Any] | None:
        """``name``'s finished task, now taken (the next ``submit`` starts a new one);
        ``None`` while none or still running."""
        future = self._tasks.get(name)
        if future is None or not future.done():
            return None
        del self._tasks[name]
        return future

    def close(self) -> None:
        self._closed.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(self.JOIN_SECONDS)
            if self._thread.is_alive():
                log.warning(
                    "worker.background_left after=%ss: a helpdesk call of a background task "
                    "was still running; it ends within its timeouts",
                    self.JOIN_SECONDS,
                )

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, task = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(task())
            except BaseException as exc:  # noqa: BLE001 - handed to the job's next pass
                future.set_exception(exc)
