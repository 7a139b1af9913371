"""A rehash racing a writer for one hash directory (what ``rehash_from_disk``
does with an emptied hash dir), for the drive-lock tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage_node.drive import DiskDrives


@contextmanager
def concurrent_rehash(hash_dir: Path, part_dir: Path) -> Iterator[None]:
    """While the block runs, a thread keeps locking ``hash_dir`` and, when it
    is empty, removing it and its emptied parents up to ``part_dir``. On exit
    it re-raises what the thread hit, and fails unless a removal really ran."""
    drives = DiskDrives()
    stop = threading.Event()
    errors: list[BaseException] = []
    removals = [0]

    def rehash() -> None:
        try:
            while not stop.is_set():
                with drives.lock_dir(hash_dir):
                    if not os.listdir(hash_dir):
                        drives.remove_empty_dirs(hash_dir, part_dir)
                        removals[0] += 1
                time.sleep(0.00005)  # a rehash moves on to other directories between visits
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    remover = threading.Thread(target=rehash)
    remover.start()
    try:
        yield
    finally:
        stop.set()
        remover.join()
    assert not errors, errors
    assert removals[0] > 0  # the race was really run
