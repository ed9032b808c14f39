"""`gasworks top`: the fleet in an interactive terminal view, built on Textual.

It reads the store and the log files only, so it runs in any terminal beside `gasworks run`, and
changes things only through the functions the CLI and the dashboard use (gasworks.web.actions),
one transaction each: a running fleet sees them in the store, as it sees `gasworks close`.

Needs the `tui` extra (textual); only `gasworks top` (and `status --watch` on a terminal) import it.
"""


from gasworks.tui.app import TopApp
from gasworks.tui.layout import slot_columns, summary

__all__ = ["TopApp", "slot_columns", "summary"]
