"""Files the commands read and write beside a study's results: text files a user gives are read as UTF-8 with an
error that says which file and how to fix it, a report never replaces a database and is written whole or not at all,
and a results DB that a failed command created is not left behind empty."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cotbridge.cache.sqlite import DATA_TABLES, SIDE_FILES, holds_rows, is_sqlite_file, remove_database
from cotbridge.errors import ConfigError


def read_user_text(path: str | Path, what: str, missing_hint: str = "") -> str:
    """The text of a file a user named (a study file, a ratings CSV): ConfigError naming it when it is missing (with
    `missing_hint`, e.g. where to find an example) or is not UTF-8."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"no {what} at {path}" + (f"; {missing_hint}" if missing_hint else ""))
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None


def checked_report_path(out: str, db: str) -> Path:
    """The file a report of the results DB `db` may be written to. ConfigError when it is a folder, or when writing
    it would replace a database: the results DB itself, its side files, a link to it, or any SQLite file."""
    target = Path(out).expanduser()
    named = f"the report file {out!r}"
    if target.is_dir():
        raise ConfigError(f"{named} is a folder; pass the path of a file, e.g. {Path(out) / 'report.html'}")
    base = Path(db).expanduser().resolve()
    protected = {base, *(Path(f"{base}{suffix}") for suffix in SIDE_FILES)}
    if target.resolve() in protected or (target.exists() and base.exists() and os.path.samefile(target, base)):
        raise ConfigError(f"{named} is the results DB {db!r}; a report never replaces it: pass another file")
    if is_sqlite_file(target):
        raise ConfigError(f"{named} is a SQLite database; a report never replaces one: pass another file")
    folder = next((p for p in target.absolute().parents if os.path.lexists(p)), None)
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"{named} cannot be made: {folder} is a file, not a folder; pass another path")
    return target


def write_atomically(target: Path, text: str) -> None:
    """Writes the whole text or nothing: a temporary file in the same folder, then renamed over the target (which
    keeps its permissions; a new file gets the umask's). A missing folder is created. ConfigError, naming the file,
    when it cannot be written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            mode = target.stat().st_mode & 0o777
        else:
            mode = os.umask(0)
            os.umask(mode)
            mode = 0o666 & ~mode
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(target, exc) from exc
        raise


def _unwritable(target: Path, exc: OSError) -> ConfigError:
    reason = exc.strerror or type(exc).__name__
    return ConfigError(
        f"cannot write {target}: {reason}; nothing was written there. Pass a path in a folder you can write to "
        "(with room on its disk)"
    )


@contextmanager
def removed_if_left_empty(db: str) -> Iterator[None]:
    """Around a command that creates the DB file `db`: when the command fails before storing any work in it (a
    config error found late, an interrupt at the start), the file it created is removed again, so no empty DB is
    left behind. A file that was there before is kept, whatever happens."""
    existed = os.path.lexists(db)
    try:
        yield
    except BaseException:
        if not existed and Path(db).is_file() and not holds_rows(db, DATA_TABLES):
            remove_database(db)
        raise
