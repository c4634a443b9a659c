"""Spend per end user (the request's `user`, OpenAI's field for the app's own id of its user) against the policy
file's `end_user_budget`: one app user cannot run up the bill for all of them.

Counted as every budget is (gateway/spend.py): from the ledger's (end_user, ts) index, at most once per `refresh_s`
per user, plus what this worker records since; the first request of a user this worker has not seen waits for that
one read. The users this worker has seen lately are kept, at most `max_users` of them (the least recent go). Requests
without `user` are not held to it. A user's budget is shared by every key and policy: the id is the app's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.errors import QuotaExceeded
from gateway.ledger import LedgerRecord
from gateway.ledger.record import END_USER_MAX
from gateway.spend import Reader, ReadSpend, Spend
from router.policy import Budget


class EndUserBudgets:
    """Admits a request for its end user or raises QuotaExceeded; a recorder sink (gateway/recorder.py) too."""

    def __init__(
        self,
        budget: Budget | None,
        read: ReadSpend,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        max_users: int = 10_000,
    ) -> None:
        self.budget = budget
        self._reader = Reader(read, refresh_s, clock)
        self._max = max_users
        self._users: OrderedDict[str, Spend] = OrderedDict()

    @property
    def active(self) -> bool:
        return self.budget is not None

    async def admit(self, user: str | None) -> None:
        if self.budget is None or not user:
            return
        uid = user[:END_USER_MAX]  # as the ledger keeps it
        s = self._users.get(uid)
        if s is None:
            s = self._users[uid] = Spend(self.budget)
            while len(self._users) > self._max:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(uid)
        await s.current(uid, self._reader)
        if s.over:
            raise QuotaExceeded(
                f"The end user '{uid}' has spent the budget each user has: ${s.spent:.4f} of ${self.budget.usd:g} in"
                f" the last {self.budget.per}. They are served again as older spend leaves that window."
            )

    def record(self, rec: LedgerRecord) -> None:
        """Sink for every finished request's record: its cost counts against its end user from now on."""
        if rec.end_user is not None and (s := self._users.get(rec.end_user[:END_USER_MAX])) is not None:
            s.since_read += rec.cost_usd
