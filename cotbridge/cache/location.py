"""Where a cache lives when nobody names a file: the user's cache directory, as the platform defines it
(`~/.cache/cotbridge` on Linux, `~/Library/Caches/cotbridge` on macOS, `%LOCALAPPDATA%\\cotbridge\\Cache` on Windows),
so that `cotbridge ask` leaves no database in whatever folder it was run from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

CACHE_DIR_ENV = "COTBRIDGE_CACHE_DIR"
DEFAULT_CACHE_NAME = "cache.db"


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """The default cache file: `$COTBRIDGE_CACHE_DIR/cache.db` when that variable is set (tests, shared machines,
    a cache on a bigger disk), else `cache.db` in the user's cache directory. Nothing is created here."""
    env = os.environ if environ is None else environ
    folder = env.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir("cotbridge", appauthor=False)
    return Path(folder).expanduser() / DEFAULT_CACHE_NAME
