"""Shared fixtures: a real `latchkey serve` process on 127.0.0.1 and clients pointed at it."""

import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

BIN = os.environ.get("LATCHKEY_BIN", str(Path(__file__).resolve().parents[2] / "target/release/latchkey"))
ACCESS_KEY = "LKTESTROOTACCESSKEY1"
SECRET_KEY = "test-secret-key-that-is-long-enough-0123"
REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(value):
    """A Python value as TOML: lists as arrays, dicts as inline tables (so `[[listeners]]` can be
    given as a list of dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


class Server:
    """One `latchkey serve` process with its own data dir; restartable on the same dir and port."""

    def __init__(self, data_dir, env_credentials=True, config=None, meta_url=None, open_files=None, env=None,
                 log_pipe=False, wrapper=(), host="127.0.0.1"):
        self.data_dir = Path(data_dir)
        self.log_pipe = log_pipe
        self.wrapper = list(wrapper)
        self.extra_env = env or {}
        self.open_files = open_files
        self.config = config
        self.meta_url = meta_url
        self.host = host
        self.port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.env_credentials = env_credentials
        self.proc = None
        self.stdout_lines = []

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
        if self.env_credentials:
            env["LATCHKEY_ROOT_ACCESS_KEY"] = ACCESS_KEY
            env["LATCHKEY_ROOT_SECRET_KEY"] = SECRET_KEY
        env.update(self.extra_env)
        # With log_pipe, the log goes to a pipe (proc.stderr) that only the test reads.
        self.stderr = None if self.log_pipe else open(self.data_dir.parent / f"{self.data_dir.name}.stderr.log", "ab")
        # A wrapper (such as strace) runs the server as its child.
        args = [*self.wrapper, BIN, "serve", "--data-dir", str(self.data_dir), "--listen", f"{self.host}:{self.port}"]
        if self.meta_url:
            args += ["--meta-url", self.meta_url]
        if self.config:
            config_file = self.data_dir.parent / f"{self.data_dir.name}.toml"
            config_file.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in self.config.items()))
            args += ["--config", str(config_file)]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if self.log_pipe else self.stderr,
            env=env,
            text=True,
            preexec_fn=self._limit_open_files if self.open_files else None,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"latchkey exited early with {self.proc.wait()}")
            self.stdout_lines.append(line.rstrip("\n"))
            if "listening on" in line:
                # `latchkey listening on http(s)://127.0.0.1:PORT`: https when TLS is on.
                self.endpoint = line.split("listening on ", 1)[1].strip()
                return self
        raise RuntimeError("latchkey did not start within 30 s")

    def _limit_open_files(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        if self.proc:
            self.proc.stdout.close()
        if self.stderr:
            self.stderr.close()
        return self.proc.returncode

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def schema(self):
        """The PostgreSQL schema this server keeps its metadata in, or None (SQLite)."""
        return self.meta_url.rsplit("search_path%3D", 1)[1] if self.meta_url else None

    def tmp_files(self):
        """Temporary files of uploads in progress or abandoned, in every process's tmp dir."""
        return [f for d in (self.data_dir / "tmp").iterdir() if d.is_dir() for f in d.iterdir()]

    def stderr_text(self):
        return (self.data_dir.parent / f"{self.data_dir.name}.stderr.log").read_text(errors="replace")

    def log_text(self, timeout=10):
        """The log with every line of the requests made so far: lines are written in order, so once a
        marker request's access-log line is in the file, so is everything logged before it."""
        marker = f"/log-marker-{uuid.uuid4().hex[:16]}"
        requests.get(self.endpoint + marker, timeout=10)
        deadline = time.monotonic() + timeout
        while marker not in (text := self.stderr_text()):
            assert time.monotonic() < deadline, f"the log marker {marker} was not written within {timeout} s"
            time.sleep(0.02)
        return text

    def client(self, **config):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
        )

    def cli_env(self, home):
        """Environment for the AWS CLI and `latchkey presign`, with credentials in a profile file."""
        home = Path(home)
        (home / ".aws").mkdir(parents=True, exist_ok=True)
        (home / ".aws" / "credentials").write_text(
            f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        )
        (home / ".aws" / "config").write_text(f"[default]\nregion = {REGION}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LATCHKEY_"))}
        env["HOME"] = str(home)
        return env


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """One server per metadata backend; every test that uses it runs against both."""
    schema = None
    meta_url = None
    if request.param == "postgres":
        schema = new_pg_schema()
        meta_url = pg_schema_url(schema)
    srv = Server(tmp_path_factory.mktemp(request.param) / "data", meta_url=meta_url).start()
    yield srv
    assert srv.stop() == 0, "latchkey did not shut down cleanly on SIGTERM"
    if schema:
        psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def fresh_server(tmp_path):
    srv = Server(tmp_path / "data").start()
    yield srv
    srv.stop(signal.SIGKILL)


@pytest.fixture
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


# Set (scripts/test and CI set it), it names a PostgreSQL that must be there; unset or empty, the
# local default is tried and its absence skips the PostgreSQL tests.
PG_REQUIRED = bool(os.environ.get("LATCHKEY_TEST_PG_URL"))
PG_URL = os.environ.get("LATCHKEY_TEST_PG_URL") or "postgres://postgres@127.0.0.1:5432/test"


AUDIT_COLUMNS = ("seq", "at_ms", "event", "share_id", "principal", "source_ip", "user_agent", "reason")


def audit_rows(server, event=None, share_id=None):
    """Stored audit events, oldest first, as dicts; optionally only one event kind or one link's."""
    where = [(column, value) for column, value in (("event", event), ("share_id", share_id)) if value is not None]
    columns = ", ".join(AUDIT_COLUMNS)
    schema = server.schema()
    if schema:
        condition = "".join(f" AND {c} = '{v.replace(chr(39), chr(39) * 2)}'" for c, v in where)
        out = psql(f"SELECT coalesce(json_agg(row_to_json(a) ORDER BY seq), '[]') FROM "
                   f"(SELECT {columns} FROM {schema}.audit_events WHERE true{condition}) a")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    condition = "".join(f" AND {c} = ?" for c, _ in where)
    # Read-only next to the running server: the database is in WAL mode.
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT {columns} FROM audit_events WHERE 1 = 1{condition} ORDER BY seq",
                          [v for _, v in where]).fetchall()
    finally:
        db.close()
    return [dict(zip(AUDIT_COLUMNS, row)) for row in rows]


def psql(sql):
    return subprocess.run(["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                          capture_output=True, text=True, timeout=30)


def pg_rows(sql):
    """The rows of a PostgreSQL query, as dicts."""
    out = psql(f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_all_scanned(schema, timeout=60):
    """Waits until every object version in `schema` (a replica's PostgreSQL schema) has a scan verdict."""
    deadline = time.monotonic() + timeout
    while pg_rows(f"SELECT key FROM {schema}.objects WHERE sensitivity IS NULL"):
        assert time.monotonic() < deadline, pg_rows(f"SELECT * FROM {schema}.scan_queue")
        time.sleep(0.2)


def pg_unavailable(required, why):
    """Fails the test when the run requires PostgreSQL; otherwise skips it (pytest -rs lists skips)."""
    if required:
        pytest.fail(f"LATCHKEY_TEST_PG_URL is set but {why}", pytrace=False)
    pytest.skip(f"!!! {why}: PostgreSQL tests did NOT run !!!")


def new_pg_schema():
    """A fresh schema on the local PostgreSQL; skips (loudly) when there is none."""
    try:
        reachable = psql("SELECT 1").returncode == 0
    except FileNotFoundError:
        reachable = False
    if not reachable:
        pg_unavailable(PG_REQUIRED, f"no PostgreSQL reachable at {PG_URL} (or no psql)")
    schema = f"lk_py_{uuid.uuid4().hex[:12]}"
    assert psql(f"CREATE SCHEMA {schema}").returncode == 0
    return schema


def pg_schema_url(schema):
    return f"{PG_URL}?options=-c%20search_path%3D{schema}"


@pytest.fixture
def replicas(pg_url, tmp_path):
    """Two servers on one PostgreSQL schema and one data dir (replicas share the database and the
    blob storage) with one master key."""
    master = {"LATCHKEY_MASTER_KEY": "ab" * 32}
    pair = [Server(tmp_path / "data", meta_url=pg_url, env=master).start() for _ in range(2)]
    yield pair
    for srv in pair:
        srv.stop()


@pytest.fixture
def pg_url():
    """A fresh schema on the local PostgreSQL, as a --meta-url."""
    schema = new_pg_schema()
    yield pg_schema_url(schema)
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
