"""Where a webhook push meets the GitSource controller: a thread-safe registry of the
sources the controller is syncing, and a way to wake one at once.

The webhook receiver runs in the HTTP server's threads, the controller in kopf's event
loop; `trigger` hands the wake-up to that loop with call_soon_threadsafe, so neither side
blocks the other and an asyncio.Event is never set from a foreign thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading

SourceKey = tuple[str, str]  # (namespace, name)


@dataclasses.dataclass(frozen=True)
class WebhookTarget:
    """What the receiver needs to accept a push for one source."""

    namespace: str
    name: str
    url: str  # the source's spec.url
    branch: str | None  # None when the source follows a tag or a commit
    secret: bytes | None  # the webhook secret; None: the source takes no webhooks


class SyncTriggers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[SourceKey, WebhookTarget] = {}
        self._waiters: dict[SourceKey, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    # The controller's side.
    def publish(self, target: WebhookTarget) -> None:
        """Called at each sync: the source's current URL, branch and webhook secret."""
        with self._lock:
            self._targets[(target.namespace, target.name)] = target

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._targets.pop((namespace, name), None)
            self._waiters.pop((namespace, name), None)

    def event(self, namespace: str, name: str) -> asyncio.Event:
        """The event the source's daemon waits on; call from inside its event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            known = self._waiters.get((namespace, name))
            if known is None or known[0] is not loop:
                known = (loop, asyncio.Event())
                self._waiters[(namespace, name)] = known
            return known[1]

    # The receiver's side.
    def target(self, namespace: str, name: str) -> WebhookTarget | None:
        with self._lock:
            return self._targets.get((namespace, name))

    def trigger(self, namespace: str, name: str) -> bool:
        """Wakes the source's daemon; False when no daemon is waiting for it."""
        with self._lock:
            known = self._waiters.get((namespace, name))
        if known is None:
            return False
        loop, event = known
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop has closed: the operator is stopping
            return False
        return True
