"""The in-process event bus: delivers each message to its subscribers, synchronously, in order."""

from __future__ import annotations

from courseinfra.services.events.ports import EventBus, Handler, OutboxMessage


class InProcessBus(EventBus):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, event_type: str, handler: Handler) -> None:
        self._handlers.setdefault(event_type, []).append(handler)

    def publish(self, message: OutboxMessage) -> None:
        for handler in self._handlers.get(message.event_type, []):
            handler(message)
