"""How many HTTP requests one worker is serving at this moment (the front layer counts them)."""

from __future__ import annotations


class Activity:
    """A plain counter: one event loop owns it, so no lock. Streams count until their last byte is sent."""

    def __init__(self) -> None:
        self.active = 0

    def idle(self) -> bool:
        """True when the request asking is the only one in progress: nothing else is waiting for the loop."""
        return self.active <= 1
