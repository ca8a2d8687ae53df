"""Files cotbridge is pointed at: it recognises its own SQLite files, refuses others untouched, reads without
writing where it only reads, never overwrites a database with a report, and leaves no empty DB behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cotbridge import Bridge
from cotbridge.cache.sqlite import APPLICATION_ID
from cotbridge.cache.store import ResponseRecord, ResponseStore
from cotbridge.errors import ConfigError
from cotbridge.study.files import checked_report_path, removed_if_left_empty, write_atomically
from cotbridge.study.results import ResultsDB, TrialRow
from tests.fault_server import FaultServer
from tests.test_cli import run
from tests.test_results_db import OLD_SCHEMA

STUDY = """
[study]
name = "s"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty"]

[models.m1]
model = "{model}"
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def application_id(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA application_id").fetchone()[0])


def foreign_db(path: Path) -> Path:
    """Another program's SQLite file, with a `trials` table of its own."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, outcome TEXT)")
        conn.execute("INSERT INTO trials (outcome) VALUES ('theirs')")
    return path


def results_db(path: Path) -> Path:
    db = ResultsDB(path)
    db.save_study("s", {"models": {"a": {}}})
    db.put_trials(
        [
            TrialRow(
                study="s",
                condition="empty",
                variant="full",
                evaluator="a",
                source="",
                sample_index=0,
                problem_id="p1",
                mode="own",
                text="t",
                answer="1",
                normalized="1",
                correct=True,
            )
        ]
    )
    db.close()
    return path


def record(i: int) -> ResponseRecord:
    big = "x" * 400
    return ResponseRecord(f"k{i}", "chat", "p", "e", "m", 0, {"q": big}, {"a": big}, 0.1, content=f"c{i}")


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The file made unwritable: by permissions, or for root (whom permissions do not stop) by `chattr +i`."""
    if os.geteuid() != 0:
        folder = path.is_dir()
        path.chmod(0o555 if folder else 0o444)
        yield
        path.chmod(0o755 if folder else 0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -- recognising cotbridge's files ---------------------------------------------------------------------------------


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    db = foreign_db(tmp_path / "theirs.db")
    before = digest(db)
    for open_it in (ResponseStore, ResultsDB):
        with pytest.raises(ConfigError, match="another program .*trials.*untouched"):
            open_it(db)
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(model="openai-compatible/x"))
    result = run("run", str(study), "--db", str(db))
    assert result.returncode == 2 and "another program" in result.stderr and "Traceback" not in result.stderr
    report = run("report", str(db))
    assert report.returncode == 2 and "another program" in report.stderr
    assert digest(db) == before and not list(tmp_path.glob("theirs.db-*"))


def test_a_sqlite_file_with_another_application_id_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA application_id = 1234")
    with pytest.raises(ConfigError, match="another program"):
        ResponseStore(db)


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n" * 100)
    with pytest.raises(ConfigError, match="not a SQLite database.*untouched"):
        ResponseStore(notes)
    assert notes.read_text() == "my notes\n" * 100


def test_new_and_zero_length_files_are_created_and_marked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    ResponseStore(empty).close()
    ResultsDB(tmp_path / "new.db").close()
    assert application_id(empty) == application_id(tmp_path / "new.db") == APPLICATION_ID


def test_files_of_earlier_versions_are_recognised_and_marked(tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"  # a cache file from before application ids: only its migrations table says so
    ResponseStore(cache).close()
    with sqlite3.connect(cache) as conn:
        conn.execute("PRAGMA application_id = 0")
    results = tmp_path / "old.db"  # a results DB from before migrations
    with sqlite3.connect(results) as conn:
        conn.executescript(OLD_SCHEMA)
    ResponseStore(cache).close()
    ResultsDB(results).close()
    assert application_id(cache) == application_id(results) == APPLICATION_ID
    assert [t.study for t in ResultsDB(results).trials()] == ["old"]


def test_report_never_writes_to_the_db(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")
    vacuumed = tmp_path / "blank.db"  # an empty SQLite file, as `sqlite3 blank.db VACUUM` makes
    with sqlite3.connect(vacuumed) as conn:
        conn.execute("VACUUM")
    before = {path: digest(path) for path in (db, vacuumed)}
    assert run("report", str(db)).returncode == 0
    blank = run("report", str(vacuumed))
    assert blank.returncode == 2 and "empty SQLite file" in blank.stderr and "Traceback" not in blank.stderr
    assert {path: digest(path) for path in (db, vacuumed)} == before
    with sqlite3.connect(vacuumed) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0


def test_report_reads_a_read_only_db_and_run_says_it_cannot_write(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(model="openai-compatible/x"))
    with read_only(db):
        report = run("report", str(db))
        assert report.returncode == 0 and "empty full" in report.stdout, report.stderr
        result = run("run", str(study), "--db", str(db))
    assert result.returncode == 2 and "read-only" in result.stderr and "Traceback" not in result.stderr


def test_cache_stats_does_not_write(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")  # results only: no responses table
    before = digest(db)
    result = run("cache", "stats", str(db))
    assert result.returncode == 2 and "tables are missing" in result.stderr and "Traceback" not in result.stderr
    assert digest(db) == before
    with sqlite3.connect(db) as conn:
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'responses'").fetchone()


def test_a_damaged_db_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    store.put_many(record(i) for i in range(200))
    store.close()
    with open(db, "r+b") as handle:  # the header and the schema page stay; the pages of the rows are garbage
        handle.seek(2 * 4096)
        handle.write(os.urandom(db.stat().st_size - 2 * 4096))
    result = run("cache", "stats", str(db))
    assert result.returncode == 2 and "damaged" in result.stderr and "Traceback" not in result.stderr
    garbage = tmp_path / "g.db"
    garbage.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    for path in (db, garbage):
        report = run("report", str(path))
        assert report.returncode == 2 and "damaged" in report.stderr and "Traceback" not in report.stderr


def test_a_store_failing_in_use_names_its_file(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    store.put_many([record(0)])
    store._conn.execute("PRAGMA query_only = 1")  # as when the file turns read-only under a run
    with pytest.raises(ConfigError, match=r"c\.db' cannot be written.*read-only"):
        store.put_many([record(1)])
    store.close()


# -- a report never replaces a database -----------------------------------------------------------------------------


def test_report_out_refuses_the_db_and_any_sqlite_file(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")
    other = foreign_db(tmp_path / "other.sqlite")
    before = {path: digest(path) for path in (db, other)}
    for out in (db, other, Path(f"{db}-wal")):
        result = run("report", str(db), "--out", str(out))
        assert result.returncode == 2 and "never replaces" in result.stderr and "Traceback" not in result.stderr
    link = tmp_path / "link.db"
    link.symlink_to(db)
    assert run("report", str(db), "--out", str(link)).returncode == 2
    assert {path: digest(path) for path in (db, other)} == before
    assert run("report", str(db), "--out", str(tmp_path)).returncode == 2  # a folder


def test_report_out_is_written_whole_into_a_new_folder(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")
    out = tmp_path / "reports" / "2024" / "r.json"
    result = run("report", str(db), "--format", "json", "--out", str(out))
    assert result.returncode == 0 and "wrote" in result.stdout, result.stderr
    assert '"study": "s"' in out.read_text()
    out.write_text("an older, longer report " * 1000)
    assert run("report", str(db), "--out", str(out)).returncode == 0
    assert "empty full" in out.read_text() and "older" not in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_a_report_that_cannot_be_written_names_the_file_and_the_fix(tmp_path: Path) -> None:
    db = results_db(tmp_path / "r.db")
    with pytest.raises(ConfigError, match=r"is the results DB .*a report never replaces it: pass another file"):
        checked_report_path(str(db), str(db))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ConfigError, match=r"notes\.txt is a file, not a folder; pass another path"):
        checked_report_path(str(notes / "2024" / "r.json"), str(db))
    result = run("report", str(db), "--format", "json", "--out", str(notes / "r.json"))
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr and "Errno" not in result.stderr
    assert notes.read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        with pytest.raises(ConfigError, match=r"cannot write .*locked/r\.json: .+; nothing was written there\. Pass"):
            write_atomically(locked / "r.json", "report")
        assert not list(locked.iterdir())
        result = run("report", str(db), "--out", str(locked / "r.json"))
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr


# -- nothing left behind --------------------------------------------------------------------------------------------


def test_a_db_created_by_a_failed_command_is_removed_and_one_with_work_kept(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    with pytest.raises(ConfigError, match="late"), removed_if_left_empty(str(fresh)):
        ResultsDB(fresh).close()
        raise ConfigError("late")
    assert not list(tmp_path.glob("fresh.db*"))
    worked = tmp_path / "worked.db"
    with pytest.raises(KeyboardInterrupt), removed_if_left_empty(str(worked)):
        results_db(worked)
        raise KeyboardInterrupt
    assert worked.is_file()


def test_a_run_refused_by_its_config_leaves_no_db(tmp_path: Path) -> None:
    study = tmp_path / "bad.toml"
    study.write_text(STUDY.format(model="nope/x"))
    result = run("run", str(study))
    assert result.returncode == 2 and "unknown provider" in result.stderr
    assert not list(tmp_path.glob("bad.db*"))
    kept = results_db(tmp_path / "kept.db")  # a DB that was there before is kept, whatever happens
    assert run("run", str(study), "--db", str(kept)).returncode == 2 and kept.is_file()


# -- a closed bridge ------------------------------------------------------------------------------------------------


async def test_a_closed_bridge_refuses_requests_instead_of_running_without_its_cache(
    faults: FaultServer, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    messages = [{"role": "user", "content": "q"}]
    bridge = Bridge(cache=db)
    model = bridge.model("openai-compatible/ok", base_url=faults.base_url)
    await model.chat(messages)
    await bridge.aclose()
    await bridge.aclose()  # closing again does nothing
    sent = faults.total
    with pytest.raises(ConfigError, match="Bridge is closed"):
        await model.chat(messages)  # stored
    with pytest.raises(ConfigError, match="Bridge is closed"):
        await model.chat(messages, seed=7)  # not stored
    with pytest.raises(ConfigError, match="Bridge is closed"):
        await model.chat(messages, n=2, temperature=1.0)
    with pytest.raises(ConfigError, match="Bridge is closed"):
        bridge.model("openai-compatible/ok", base_url=faults.base_url)
    assert faults.total == sent and model.stats.requests >= 1
    uncached = Bridge()
    other = uncached.model("openai-compatible/ok", base_url=faults.base_url)
    await uncached.aclose()
    with pytest.raises(ConfigError, match="Bridge is closed"):
        await other.complete("q")
    assert faults.total == sent


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    store.close()
    store.close()
    with pytest.raises(ConfigError, match="is closed"):
        store.get("k")
    with pytest.raises(ConfigError, match="is closed"):
        store.put_many([record(0)])


@pytest.mark.parametrize("field", ["timeout_s", "budget_usd"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0, -1.0])
def test_bridge_refuses_endless_or_empty_limits(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be a finite number above 0"):
        Bridge(**{field: value})  # type: ignore[arg-type]


async def test_a_model_with_an_endless_timeout_or_price_is_refused() -> None:
    async with Bridge() as bridge:
        with pytest.raises(ConfigError, match=r"\[timeout_s\] Input should be a finite number"):
            bridge.model("openai-compatible/x", base_url="http://127.0.0.1:9/v1", timeout_s=float("inf"))
        with pytest.raises(ConfigError, match=r"\[price.output\] Input should be a finite number"):
            bridge.model(
                "openai-compatible/x", base_url="http://127.0.0.1:9/v1", price={"input": 1.0, "output": float("inf")}
            )


@pytest.mark.parametrize("section", ["[models.m1]", "[study.retry]"])
def test_a_study_with_an_endless_timeout_is_refused_without_a_traceback(tmp_path: Path, section: str) -> None:
    study = tmp_path / "inf.toml"
    model = STUDY.format(model="openai-compatible/x") + 'base_url = "http://127.0.0.1:9/v1"\n'
    study.write_text(model + ("timeout_s = inf\n" if section == "[models.m1]" else "[study.retry]\ntimeout_s = inf\n"))
    result = run("run", str(study))
    assert result.returncode == 2 and "timeout_s" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("inf.db*"))


def test_a_study_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """Passes once `load_study` (cotbridge/study/config.py) names the file instead of raising UnicodeDecodeError."""
    study = tmp_path / "latin1.toml"
    study.write_bytes(STUDY.format(model="openai-compatible/x").replace('"s"', '"caf\xe9"').encode("latin-1"))
    result = run("run", str(study))
    assert result.returncode == 2 and "UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("latin1.db*"))
