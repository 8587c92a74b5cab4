"""A recording stand-in for the inbox's side of `core.ports.TurnQueue` (adapter and portal tests)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingQueue:
    """Records which users' drains were scheduled; like the real queue, a scheduled user is not scheduled again.

    `broken` makes scheduling fail as when Redis is down.
    """

    calls: list[int] = field(default_factory=list)
    broken: bool = False

    async def schedule(self, user_id: int) -> bool:
        """Claim the user's drain slot unless already claimed."""
        if self.broken:
            raise ConnectionError("Redis is down")
        if user_id in self.calls:
            return False
        self.calls.append(user_id)
        return True
