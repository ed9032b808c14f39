"""A claiming process for the concurrency test: says it is ready, waits for the start file, claims until none
are left."""

import sys
import time
from pathlib import Path

from gasworks.store import open_store


def main(db: str, name: str, start_file: str) -> None:
    store = open_store(db)  # a SQLite file or a postgresql:// URL
    Path(f"{start_file}.{name}.ready").touch()
    while not Path(start_file).exists():
        time.sleep(0.001)
    while (task := store.claim_next(name, lease_seconds=600)) is not None:
        print(task.id, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
