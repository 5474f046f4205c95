"""A curious analyst's SQL (issue 13, items 1 and 2), through the real CLI: ``feedcast
sql``, ``report``, ``export-history``, ``automation add/edit --where`` and a ``send``
with a stored predicate. No query may read or write a file beside the store (the system's,
the signing key), list folders, fetch a URL or install an extension; only one SELECT
runs; and no error quotes a value read from a row or a file."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import feedcast.cli as cli_module
from feedcast.automations import AutomationSpec, add_automation
from feedcast.cli import main
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.store import Store
from feedcast.tokens import signing_key

SECRET = "TOPSECRET-4f1c9a"  # in a file no SQL may read
TITLE = "Private launch 7Q2"  # in a row: an error must not quote it
PASSWD_LINE = re.compile(r"root:[^:\n]*:0:0")
SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # automations start here


class Cli:
    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main(["--db", str(self.db), *args])
            status = 0
        except SystemExit as exc:
            status = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    def fails(self, *args: str) -> str:
        """The one error line of a command that must fail (and never a traceback)."""
        status, out, err = self.run(*args)
        assert status != 0, f"ran: stdout={out!r}"
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
        return err + out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_source("shop", "https://shop.example/feed.xml")
    _poll(store, [Item(key="base", title="Base", url="https://shop.example/base")], -60)
    store.add_channel("review", "outbox", {"dir": str(tmp_path / "outbox"), "format": "json"})
    store.add_subscribers("review", [NewSubscriber("team")])
    signing_key(store.path, {})  # the key beside the store, as `feedcast web` and sends create it
    return store


def _poll(store: Store, items: list[Item], minutes: int) -> None:
    source = store.get_source("shop")
    when = T0 + timedelta(minutes=minutes)
    store.record_polls(
        [PollOutcome(source.id, source.url, when, 0.01, "ok", 200, items=tuple(items))], now=when
    )


def _new_items(store: Store) -> None:
    base = Item(key="base", title="Base", url="https://shop.example/base")
    launch = Item(key="p1", title=TITLE, url="https://shop.example/p1", price=Decimal("40"), currency="EUR")
    _poll(store, [base, launch], 5)


@pytest.fixture
def cli(store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    return Cli(store.path, capsys)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


def _key_file(store: Store) -> Path:
    return store.path.with_name(store.path.name + ".key")


def _sql(path: Path) -> str:
    return str(path).replace("'", "''")


class Recorder:
    """A loopback HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append(self.path)
                body = f"internal {SECRET}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_extension_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's extension folder under a HOME of the test's, holding an unusable httpfs:
    were a query to need httpfs (feedcast before these guards auto-installed it), DuckDB
    would try that file, never a download from outside this machine."""
    probe = duckdb.connect()
    version = str(duckdb.__version__)
    [(platform,)] = probe.execute("PRAGMA platform").fetchall()
    probe.close()
    home = tmp_path / "home"
    folder = home / ".duckdb" / "extensions" / f"v{version}" / str(platform)
    folder.mkdir(parents=True)
    (folder / "httpfs.duckdb_extension").write_bytes(b"not an extension")
    monkeypatch.setenv("HOME", str(home))


# --------------------------------------------------------------------------- feedcast sql


def test_sql_cannot_read_etc_passwd(cli: Cli) -> None:
    err = cli.fails("sql", "SELECT * FROM read_text('/etc/passwd')")
    assert not PASSWD_LINE.search(err)
    assert "files, URLs and extensions are out of reach" in err


def test_sql_cannot_read_a_file_beside_the_store(cli: Cli, secret_file: Path) -> None:
    err = cli.fails("sql", f"SELECT content FROM read_text('{_sql(secret_file)}')", "--format", "json")
    assert SECRET not in err and "out of reach" in err


def test_sql_cannot_list_files_with_glob(cli: Cli, store: Store) -> None:
    err = cli.fails("sql", f"SELECT * FROM glob('{_sql(store.path.parent)}/**')")
    assert ".key" not in err and "out of reach" in err
    err = cli.fails("sql", "SELECT * FROM glob('/**') LIMIT 5")
    assert "out of reach" in err


def test_sql_cannot_read_the_signing_key(cli: Cli, store: Store) -> None:
    key = _key_file(store).read_text(encoding="ascii").strip()
    for query in (
        f"SELECT content FROM read_text('{_sql(_key_file(store))}')",
        f"SELECT * FROM read_csv('{_sql(_key_file(store))}', header = false)",
        f"SELECT content FROM read_blob('{_sql(_key_file(store))}')",
    ):
        err = cli.fails("sql", query, "--format", "csv")
        assert key not in err and "out of reach" in err


def test_sql_cannot_overwrite_the_signing_key(cli: Cli, store: Store) -> None:
    before = _key_file(store).read_bytes()
    err = cli.fails("sql", f"COPY (SELECT 'x') TO '{_sql(_key_file(store))}' (FORMAT csv, HEADER false)")
    assert "read-only" in err and "COPY" in err
    assert _key_file(store).read_bytes() == before


def test_sql_cannot_install_an_extension(cli: Cli, recorder: Recorder) -> None:
    err = cli.fails("sql", f"INSTALL httpfs FROM '{recorder.url}'")
    assert "read-only" in err
    assert recorder.requests == []  # nothing was downloaded, not even tried


def test_sql_cannot_fetch_a_url(cli: Cli, recorder: Recorder) -> None:
    err = cli.fails("sql", f"SELECT content FROM read_text('{recorder.url}/internal')")
    assert SECRET not in err and "out of reach" in err
    assert recorder.requests == []
    # nor with the extension repository moved to an address of the caller's
    err = cli.fails(
        "sql",
        f"SET autoinstall_extension_repository = '{recorder.url}';"
        f" SELECT content FROM read_text('{recorder.url}/internal')",
    )
    assert SECRET not in err and "one SELECT" in err
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("PRAGMA version", "PRAGMA"),
        ("SET enable_external_access = true", "SET"),
        ("RESET lock_configuration", "SET"),
        ("ATTACH '{dir}/other.duckdb' AS other", "ATTACH"),
        ("DETACH feedcast", "DETACH"),
        ("CALL pragma_version()", "CALL"),
        ("EXPORT DATABASE '{dir}/dump'", "EXPORT"),
        ("COPY sources TO '{dir}/sources.csv'", "COPY"),
        ("CREATE TEMP MACRO leak() AS 1", "CREATE"),
        ("INSERT INTO sources (name, url, added_url) VALUES ('x', 'y', 'z')", "INSERT"),
        ("LOAD httpfs", "LOAD"),
        ("SELECT 1 AS a; SELECT 2 AS b", "2 statements"),
    ],
)
def test_sql_runs_one_select_and_nothing_else(cli: Cli, store: Store, statement: str, kind: str) -> None:
    folder = _sql(store.path.parent)
    err = cli.fails("sql", statement.format(dir=folder))
    assert "read-only and runs one SELECT" in err and kind in err
    assert not (store.path.parent / "dump").exists() and not (store.path.parent / "sources.csv").exists()
    assert not (store.path.parent / "other.duckdb").exists()


def test_sql_cast_error_does_not_quote_the_row(cli: Cli, store: Store) -> None:
    _new_items(store)
    err = cli.fails("sql", "SELECT title::INT FROM items")
    assert TITLE not in err and "Conversion Error" in err
    err = cli.fails("sql", "SELECT error(title) FROM items WHERE key = 'p1'")
    assert TITLE not in err


def test_sql_keeps_the_reason_of_a_query_that_does_not_bind(cli: Cli) -> None:
    err = cli.fails("sql", "SELECT nope FROM items")
    assert 'Referenced column "nope" not found' in err


def _documented_relations() -> list[str]:
    names = re.findall(r"^## `([a-z_]+)`", SCHEMA_DOC.read_text(encoding="utf-8"), flags=re.M)
    assert len(names) >= 10
    return names


def test_sql_answers_every_documented_table_and_view(cli: Cli, store: Store) -> None:
    _new_items(store)
    add_automation(
        store, "digest", AutomationSpec(sources=["shop"], layout="digest", channel="review"), now=T0
    )
    status, out, err = cli.run("send", "digest")
    assert status == 0, err
    for i, name in enumerate(_documented_relations()):
        fmt = ("json", "csv", "table")[i % 3]  # each relation once, every format in turn
        status, out, err = cli.run("sql", f"SELECT * FROM {name} LIMIT 3", "--format", fmt)
        # a table cut to fit the terminal says so on stderr; nothing else may appear there
        notes = [line for line in err.splitlines() if not line.startswith("(cells cut to fit")]
        assert status == 0 and notes == [] and out, (name, fmt, err)
    for query in ("DESCRIBE items", "SHOW TABLES", "SUMMARIZE items", "FROM send_history SELECT status"):
        status, out, err = cli.run("sql", query, "--format", "csv")
        assert status == 0 and err == "", (query, err)
    status, out, _ = cli.run(
        "sql", "WITH s AS (SELECT status FROM send_history) SELECT count(*) AS n FROM s", "--format", "json"
    )
    assert status == 0 and json.loads(out) == [{"n": 1}]


# --------------------------------------------------------------------------- report, export-history


def _rewrite_view(store: Store, sql: str) -> None:
    """A store file whose view reads elsewhere: a copied, restored or shared file holds
    whatever views whoever wrote it chose."""
    con = duckdb.connect(str(store.path))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_report_does_not_run_a_view_that_reads_files(cli: Cli, store: Store) -> None:
    _rewrite_view(
        store,
        "CREATE OR REPLACE VIEW source_health AS SELECT content AS name, 'active' AS status,"
        " NULL::TIMESTAMPTZ AS last_success_at, 0 AS consecutive_errors, 0 AS fetches,"
        " NULL::DOUBLE AS ratio_304, 0.0 AS items_per_day, NULL::DOUBLE AS median_fetch_ms,"
        " NULL::VARCHAR AS last_error, NULL::TIMESTAMPTZ AS last_polled_at, 'feed' AS kind,"
        " 'x' AS url FROM read_text('/etc/passwd')",
    )
    err = cli.fails("report", "--since", "30d", "--automation", "digest", "--format", "json")
    assert not PASSWD_LINE.search(err)
    err = cli.fails("report", "--since", "2020-01-01", "--format", "json")
    assert not PASSWD_LINE.search(err) and "out of reach" in err


def test_export_history_does_not_copy_the_signing_key(cli: Cli, store: Store, tmp_path: Path) -> None:
    key = _key_file(store).read_text(encoding="ascii").strip()
    _rewrite_view(
        store,
        "CREATE OR REPLACE VIEW send_history AS SELECT content AS recipient,"
        f" now() AS campaign_created_at FROM read_text('{_sql(_key_file(store))}')",
    )
    out_dir = tmp_path / "parquet"
    err = cli.fails("export-history", "--parquet", str(out_dir), "--since", "2020-01-01")
    assert key not in err and "out of reach" in err
    for written in out_dir.glob("*"):
        assert key.encode() not in written.read_bytes()


def test_export_history_writes_only_into_its_folder(cli: Cli, store: Store, tmp_path: Path) -> None:
    out_dir = tmp_path / "parquet"
    status, _out, err = cli.run("export-history", "--parquet", str(out_dir), "--since", "30d")
    assert status == 0, err
    assert {p.name for p in out_dir.iterdir()} == {
        "send_history.parquet",
        "campaigns.parquet",
        "campaign_report.parquet",
        "clicks.parquet",
        "subscription_events.parquet",
    }
    assert pq.read_table(out_dir / "campaigns.parquet").num_rows == 0


# --------------------------------------------------------------------------- --where


PASSWD_CAST = "(SELECT content FROM read_text('/etc/passwd'))::INT > 0"


def _add(*where: str) -> list[str]:
    return [
        "automation",
        "add",
        "deals",
        "--source",
        "shop",
        "--layout",
        "digest",
        "--channel",
        "review",
        *where,
    ]


def test_where_cannot_read_etc_passwd_at_validation(cli: Cli, store: Store) -> None:
    err = cli.fails(*_add("--where", PASSWD_CAST))
    assert not PASSWD_LINE.search(err) and "out of reach" in err
    assert store.list_automations() == []


def test_where_cannot_test_the_signing_key(cli: Cli, store: Store) -> None:
    """An accepted predicate over the key would leak it one item at a time (sent or not)."""
    key = _sql(_key_file(store))
    err = cli.fails(*_add("--where", f"starts_with((SELECT content FROM read_text('{key}')), '0')"))
    assert "out of reach" in err
    assert store.list_automations() == []
    cli.run(*_add("--where", "price < 50"))
    err = cli.fails(
        "automation", "edit", "deals", "--where", f"length((SELECT content FROM read_text('{key}'))) > 0"
    )
    assert "out of reach" in err
    assert store.get_automation("deals").where == "price < 50"


def test_where_cannot_list_files(cli: Cli, store: Store) -> None:
    err = cli.fails(*_add("--where", f"(SELECT count(*) FROM glob('{_sql(store.path.parent)}/*')) > 0"))
    assert "out of reach" in err and store.list_automations() == []


def test_where_cannot_close_its_parenthesis(cli: Cli, store: Store) -> None:
    """A predicate that ends the WHERE clause early (here a comment swallowing its
    closing parenthesis) would change the shape of the query it is pasted into."""
    err = cli.fails(*_add("--where", "true) --"))
    assert "--where 'true) --'" in err
    err = cli.fails(*_add("--where", "true) UNION ALL SELECT * FROM item WHERE (true"))
    assert "not one boolean expression" in err
    assert store.list_automations() == []


def _store_predicate(store: Store, predicate: str) -> None:
    """What a store written by an older feedcast (or edited by hand) may hold."""
    con = duckdb.connect(str(store.path))
    try:
        con.execute("UPDATE automations SET where_sql = ? WHERE name = 'deals'", [predicate])
    finally:
        con.close()


def test_send_with_a_stored_predicate_cannot_read_files(cli: Cli, store: Store) -> None:
    add_automation(
        store, "deals", AutomationSpec(sources=["shop"], layout="digest", channel="review"), now=T0
    )
    _new_items(store)
    _store_predicate(store, PASSWD_CAST)
    err = cli.fails("send", "deals")
    assert not PASSWD_LINE.search(err) and "out of reach" in err
    assert store.query("SELECT count(*) AS n FROM campaigns")[1] == [{"n": 0}]
    # nothing was consumed and the lease is free: a fixed predicate sends the item
    _store_predicate(store, "price < 50")
    status, out, err = cli.run("send", "deals", "--format", "json")
    assert status == 0, err
    assert json.loads(out)["campaigns"][0]["items"] == 1


def test_send_cast_error_does_not_quote_the_item(cli: Cli, store: Store) -> None:
    add_automation(
        store,
        "deals",
        AutomationSpec(sources=["shop"], layout="digest", channel="review", where="title::INT > 0"),
        now=T0,
    )
    _new_items(store)
    err = cli.fails("send", "deals")
    assert TITLE not in err and "Conversion Error" in err and "deals" in err
    assert store.query("SELECT count(*) AS n FROM campaigns")[1] == [{"n": 0}]


def test_run_reports_a_failing_predicate_and_sends_the_others(cli: Cli, store: Store) -> None:
    spec = AutomationSpec(
        sources=["shop"], layout="digest", channel="review", on_new=True, where="price < 50"
    )
    add_automation(store, "deals", spec, now=T0)
    every = AutomationSpec(sources=["shop"], layout="digest", channel="review", on_new=True)
    add_automation(store, "all", every, now=T0)
    _new_items(store)
    _store_predicate(store, PASSWD_CAST)
    _status, out, err = cli.run("run", "--no-poll", "--format", "json")
    assert not PASSWD_LINE.search(out + err)
    errors = {r["automation"]: r["error"] for r in json.loads(out)["automations"]}
    assert "out of reach" in errors["deals"] and errors["all"] is None
    sent = {c["automation"] for c in store.query("SELECT automation FROM campaign_report")[1]}
    assert sent == {"all"}
