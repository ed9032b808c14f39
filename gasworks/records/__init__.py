"""The records of what happened to tasks: events (every change), attempts (every run of an agent) and
merges (every branch in the merge queue), one row of the store each. `gasworks.models` gives them too.

Each is loaded on first use, from a module of its own: no quick command makes one (`show` makes
events, and attempts when there are some), and a dataclass costs its creation at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gasworks.records.attempt import Attempt as Attempt
    from gasworks.records.event import Event as Event
    from gasworks.records.merge import Merge as Merge


def __getattr__(name: str) -> Any:
    value: Any
    if name == "Attempt":
        from gasworks.records.attempt import Attempt as value
    elif name == "Event":
        from gasworks.records.event import Event as value
    elif name == "Merge":
        from gasworks.records.merge import Merge as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
