"""What a fake API server was asked: a list its server thread appends to and tests read."""
import threading
from typing import Any, Callable, List


class CallLog:
    """A list of calls that the server thread appends to and tests read, wait for and clear."""

    def __init__(self) -> None:
        self._calls: List[Any] = []
        self._changed = threading.Condition()

    def append(self, call: Any) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._calls.clear()

    def snapshot(self) -> List[Any]:
        with self._changed:
            return list(self._calls)

    def __iter__(self):
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def __getitem__(self, index):
        return self.snapshot()[index]

    def wait(self, found: Callable[[List[Any]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: found(self._calls), timeout=timeout)
