"""Warnings that come at a sensor's rate, logged once."""

from __future__ import annotations

__all__ = ["LogOnce"]


class LogOnce:
    """Logs each kind of problem the first time only (bad frames and bad detections come at
    the camera's rate); ``logger`` is the node's rclpy logger."""

    def __init__(self, logger: object) -> None:
        self._logger = logger
        self._seen: set[str] = set()

    def __call__(self, message: str, key: str | None = None) -> None:
        """Log ``message`` as a warning the first time its ``key`` (default: the message) comes."""
        key = message if key is None else key
        if key not in self._seen:
            self._seen.add(key)
            self._logger.warning(f"{message}; logged once")

    def seen(self, key: str) -> bool:
        return key in self._seen
