"""Memory windows a PostgreSQL replica follows through its own turns (see turn_guesses).

When this replica's run claimed its session at a known window (the turn's write checked
the revision) and its end was recorded here, the session's window afterwards is known
without a read: the window, the user message the write appended, and the messages the
end appended (their sequence numbers must follow on). The next turn of the session on
this replica can then be guessed with that window, and its write checks it as any
window. A window stops being followed when anything else may have changed the session:
another replica's turn ending there (the doorbell's NOTIFY names the run), any other
write of the session here, an end that was not recorded as expected.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..core.store_port import NO_SESSION, SessionRevision
from ..core.types import Message, Run
from .history_cache import MAX_WINDOW_CHARS, HistoryCache, SessionKey

MAX_FOLLOWED = 1024  # sessions (each window at most MAX_WINDOW_CHARS of content)
MAX_FOLLOWED_CHARS = 16 * 1024 * 1024  # content of all the windows together
MAX_IN_FLIGHT = 10_000  # runs between their write and their end


@dataclass(slots=True)
class Followed:
    """A session's window as one of this replica's runs left it."""

    run_id: str
    owner: str
    revision: SessionRevision
    limit: int
    messages: list[Message]
    chars: int = 0  # of the messages' content


class FollowedWindows:
    """The windows of sessions whose last turns ran here (bounded)."""

    def __init__(self, kept: HistoryCache) -> None:
        self._kept = kept
        self._in_flight: dict[str, tuple[SessionKey, Followed]] = {}
        self._windows: OrderedDict[SessionKey, Followed] = OrderedDict()
        self._chars = 0  # of every window followed

    def current(self, key: SessionKey) -> Followed | None:
        """The followed window of a session, if nothing else changed it since."""
        return self._windows.get(key)

    def began(
        self, key: SessionKey, run: Run, user_message: Message, at: SessionRevision, limit: int
    ) -> None:
        """`run` was stored running with its user message, its write having found the
        session at `at`: follow it from the window at `at`, if known here."""
        start = self._window_at(key, at, limit)
        self.forget(key)
        if start is None:
            return
        created = at.create_time if at != NO_SESSION else run.create_time
        size, messages = start
        window = [*messages, user_message][-size:]
        revision = SessionRevision(created, at.count + 1)
        if len(self._in_flight) >= MAX_IN_FLIGHT:  # ends never written here: oldest out
            del self._in_flight[next(iter(self._in_flight))]
        self._in_flight[run.run_id] = (key, Followed(run.run_id, run.owner, revision, size, window))

    def _window_at(
        self, key: SessionKey, at: SessionRevision, limit: int
    ) -> tuple[int, list[Message]] | None:
        """The window (its size and messages) of the session at `at`: followed, kept
        from a read, or empty for a new session; None if not known here."""
        if at == NO_SESSION:
            return limit, []
        followed = self._windows.get(key)
        if followed is not None and followed.revision == at:
            return followed.limit, followed.messages
        kept = self._kept.peek(key)
        if kept is not None and SessionRevision(kept.created, kept.count) == at:
            return kept.limit, kept.messages
        return None

    def ended(self, run_id: str, sent: int, stored: list[Message] | None) -> None:
        """The end of run `run_id` was written with `sent` messages, stored as `stored`
        (None: not recorded as sent, or not known)."""
        entry = self._in_flight.pop(run_id, None)
        if entry is None:
            return
        key, followed = entry
        if stored is None or len(stored) != sent:
            return
        if stored and stored[0].sequence != followed.revision.count + 1:
            return  # something else was appended meanwhile
        messages = (followed.messages + stored)[-followed.limit :]
        chars = sum(len(m.content) for m in messages)
        if chars > MAX_WINDOW_CHARS:
            return
        count = followed.revision.count + len(stored)
        followed.revision = SessionRevision(followed.revision.create_time, count)
        followed.messages, followed.chars = messages, chars
        self.forget(key)
        self._windows[key] = followed
        self._chars += chars
        while len(self._windows) > MAX_FOLLOWED or self._chars > MAX_FOLLOWED_CHARS:
            self._chars -= self._windows.popitem(last=False)[1].chars

    def heard_end(self, key: SessionKey, run_id: str) -> None:
        """A turn of the session ended somewhere: unless it is the one followed, the
        window moved."""
        followed = self._windows.get(key)
        if followed is not None and followed.run_id != run_id:
            self.forget(key)

    def forget(self, key: SessionKey) -> None:
        """The session is written some other way here: stop following it."""
        followed = self._windows.pop(key, None)
        if followed is not None:
            self._chars -= followed.chars
