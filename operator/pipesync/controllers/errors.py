"""Why a pass did not get its object where it should be, typed by what happens next (the
model of Flux's source-controller: Stalling, Waiting, Generic):

- `Stalled`: permanent for this input (a bad reference, an invalid schedule): no retry;
  the next pass comes with a change (a wake-up) or the resync period.
- `Waiting`: something else must happen first (an earlier Run's ConfigMap must go): the
  next pass comes after `delay`.
- `Transient`: this attempt failed (an API server, git host or S3 error): retried with
  the driver's backoff.

Each knows the health its object shows meanwhile (conditions.Health) and its Event, and
`to_kopf` maps it, in this one place, onto kopf's TemporaryError / PermanentError, the
retry vocabulary controllers.driver follows.
"""

from __future__ import annotations

from typing import ClassVar

import kopf

from pipesync.controllers.conditions import Health

#: (type, reason, message) of a Kubernetes Event, as the passes return them.
Event = tuple[str, str, str]
#: Events carry at most this much of a message.
MAX_EVENT_MESSAGE = 1000


class PassError(Exception):
    """The reason (a condition and Event reason) and the message of a failed pass."""

    health: ClassVar[Health]
    #: The Event type this error is told with; None: no Event (an expected wait).
    event_type: ClassVar[str | None]

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def event(self) -> Event | None:
        if self.event_type is None:
            return None
        return (self.event_type, self.reason, self.message[:MAX_EVENT_MESSAGE])


class Stalled(PassError):
    """Only a change of the object (or of what it names) can help: no retry."""

    health = Health.STALLED
    event_type = "Warning"


class Waiting(PassError):
    """Not an error of the object: the pass waits `delay` seconds for something else."""

    health = Health.PROGRESSING
    event_type = None

    def __init__(self, reason: str, message: str, delay: float) -> None:
        super().__init__(reason, message)
        self.delay = delay


class Transient(PassError):
    """This attempt failed; the same pass may well succeed later: retried with backoff."""

    health = Health.FAILING
    event_type = "Warning"


def to_kopf(error: PassError, backoff: float) -> kopf.TemporaryError | kopf.PermanentError:
    """The one mapping onto kopf: Stalled is permanent; Waiting is retried after its own
    delay; Transient after `backoff` (the retry policy's delay for its failure count)."""
    text = f"{error.reason}: {error.message}"
    if isinstance(error, Stalled):
        return kopf.PermanentError(text)
    if isinstance(error, Waiting):
        return kopf.TemporaryError(text, delay=error.delay)
    return kopf.TemporaryError(text, delay=backoff)
