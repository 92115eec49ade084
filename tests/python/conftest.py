"""Shared fixtures: a real `latchkey serve` process on 127.0.0.1 and clients pointed at it."""

import os
import resource
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
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
    """A Python value as TOML (repr() spells booleans and strings the Python way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class Server:
    """One `latchkey serve` process with its own data dir; restartable on the same dir and port."""

    def __init__(self, data_dir, env_credentials=True, config=None, meta_url=None, open_files=None):
        self.data_dir = Path(data_dir)
        self.open_files = open_files
        self.config = config
        self.meta_url = meta_url
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env_credentials = env_credentials
        self.proc = None
        self.stdout_lines = []

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
        if self.env_credentials:
            env["LATCHKEY_ROOT_ACCESS_KEY"] = ACCESS_KEY
            env["LATCHKEY_ROOT_SECRET_KEY"] = SECRET_KEY
        self.stderr = open(self.data_dir.parent / f"{self.data_dir.name}.stderr.log", "ab")
        args = [BIN, "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"]
        if self.meta_url:
            args += ["--meta-url", self.meta_url]
        if self.config:
            config_file = self.data_dir.parent / f"{self.data_dir.name}.toml"
            config_file.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in self.config.items()))
            args += ["--config", str(config_file)]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
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


PG_URL = os.environ.get("LATCHKEY_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")


def psql(sql):
    return subprocess.run(["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                          capture_output=True, text=True, timeout=30)


def new_pg_schema():
    """A fresh schema on the local PostgreSQL; skips (loudly) when there is none."""
    try:
        reachable = psql("SELECT 1").returncode == 0
    except FileNotFoundError:
        reachable = False
    if not reachable:
        pytest.skip(f"!!! no PostgreSQL reachable at {PG_URL} (or no psql): PostgreSQL tests did NOT run !!!")
    schema = f"lk_py_{uuid.uuid4().hex[:12]}"
    assert psql(f"CREATE SCHEMA {schema}").returncode == 0
    return schema


def pg_schema_url(schema):
    return f"{PG_URL}?options=-c%20search_path%3D{schema}"


@pytest.fixture
def pg_url():
    """A fresh schema on the local PostgreSQL, as a --meta-url."""
    schema = new_pg_schema()
    yield pg_schema_url(schema)
    psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
