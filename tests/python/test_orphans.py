"""Nothing left behind: blobs written but never committed (what a kill -9 between a blob's rename
and its record leaves) are removed by the orphan sweep once older than the grace period, at start
and then periodically, with a count in the log; nothing committed is touched, also with two
replicas sharing one data dir while they write. `latchkey fsck` reports missing, wrong-sized and
orphaned blobs and changes nothing unless asked."""

import os
import sqlite3
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import BIN, Server


def plant_orphans(data_dir, count, age_secs):
    """Blob files no record names, last written `age_secs` ago."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    for blob_id in ids:
        shard = data_dir / "blobs" / blob_id[:2]
        shard.mkdir(parents=True, exist_ok=True)
        path = shard / blob_id
        path.write_bytes(os.urandom(100))
        then = time.time() - age_secs
        os.utime(path, (then, then))
    return ids


def blob_path(data_dir, blob_id):
    return data_dir / "blobs" / blob_id[:2] / blob_id


def log_text(server):
    return (server.data_dir.parent / f"{server.data_dir.name}.stderr.log").read_text(errors="replace")


def test_orphans_a_crash_left_are_swept_at_start_and_committed_objects_stay(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    s3 = server.client()
    s3.create_bucket(Bucket="kept")
    bodies = {f"k{n}": os.urandom(1000 + n) for n in range(20)}
    for key, body in bodies.items():
        s3.put_object(Bucket="kept", Key=key, Body=body)
    server.kill9()
    old = plant_orphans(data, 5, age_secs=7200)
    fresh = plant_orphans(data, 2, age_secs=0)

    server = Server(data, config={"orphan_grace_secs": 3600}).start()
    try:
        deadline = time.monotonic() + 30
        while any(blob_path(data, b).exists() for b in old):
            assert time.monotonic() < deadline, "the sweep at start did not remove the old orphans"
            time.sleep(0.2)
        assert all(blob_path(data, b).exists() for b in fresh), "younger than the grace period: kept"
        assert "orphaned blobs removed" in log_text(server) and "removed=5" in log_text(server)
        s3 = server.client()
        for key, body in bodies.items():
            assert s3.get_object(Bucket="kept", Key=key)["Body"].read() == body
    finally:
        server.stop()


def test_two_replicas_sweeping_one_data_dir_while_writing_lose_nothing(pg_url, tmp_path):
    data = tmp_path / "data"
    config = {"orphan_grace_secs": 600, "orphan_sweep_interval_secs": 1}
    master = {"LATCHKEY_MASTER_KEY": "ab" * 32}
    pair = [Server(data, meta_url=pg_url, env=master, config=config).start() for _ in range(2)]
    try:
        clients = [srv.client() for srv in pair]
        clients[0].create_bucket(Bucket="busy")
        old = plant_orphans(data, 10, age_secs=600)

        def write(n):
            body = os.urandom(2000 + n)
            clients[n % 2].put_object(Bucket="busy", Key=f"o{n}", Body=body)
            return f"o{n}", body

        written = {}
        deadline = time.monotonic() + 5  # several sweeps on each replica while writes go on
        with ThreadPoolExecutor(4) as pool:
            n = 0
            while time.monotonic() < deadline:
                written.update(pool.map(write, range(n, n + 8)))
                n += 8
        assert not any(blob_path(data, b).exists() for b in old)
        for key, body in written.items():
            assert clients[1].get_object(Bucket="busy", Key=key)["Body"].read() == body, key
    finally:
        for srv in pair:
            srv.stop()


def fsck(data, *args):
    return subprocess.run([BIN, "fsck", "--data-dir", str(data), *args], capture_output=True, text=True, timeout=60)


def test_fsck_reports_missing_wrong_sized_and_orphaned_blobs_and_changes_nothing_unless_asked(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    s3 = server.client()
    s3.create_bucket(Bucket="bkt")
    for key in ["gone", "cut", "fine"]:
        s3.put_object(Bucket="bkt", Key=key, Body=b"x" * 100)
    server.stop()
    clean = fsck(data)
    assert clean.returncode == 0 and "checked 3 records: 0 missing" in clean.stdout, clean

    db = sqlite3.connect(data / "meta.db")
    blobs = dict(db.execute("SELECT key, blob_id FROM objects WHERE bucket = 'bkt'").fetchall())
    db.close()
    blob_path(data, blobs["gone"]).unlink()
    with open(blob_path(data, blobs["cut"]), "r+b") as cut:
        cut.truncate(40)
    orphans = plant_orphans(data, 2, age_secs=7200)
    found = fsck(data)
    assert found.returncode == 1, found
    assert "missing blob: s3://bkt/gone" in found.stdout
    assert "wrong size: s3://bkt/cut (recorded 100 bytes, the blob has 40)" in found.stdout
    assert all(f"orphaned blob: {o}" in found.stdout for o in orphans), found.stdout
    assert all(blob_path(data, o).exists() for o in orphans), "nothing changed"

    removed = fsck(data, "--remove-orphans")
    assert "removed 2 orphaned blobs" in removed.stdout and removed.returncode == 1, removed
    assert not any(blob_path(data, o).exists() for o in orphans)
    assert blob_path(data, blobs["fine"]).exists() and blob_path(data, blobs["cut"]).exists()

    server = Server(data).start()
    try:
        locked = fsck(data)
        assert locked.returncode == 2 and "in use by another latchkey process" in locked.stderr, locked
    finally:
        server.stop()


def test_a_store_that_is_not_the_data_dirs_sweeps_nothing(tmp_path):
    """A wrong --meta-url (an empty store) beside a data dir full of old blobs: nothing deleted."""
    data = tmp_path / "data"
    server = Server(data).start()
    s3 = server.client()
    s3.create_bucket(Bucket="precious")
    s3.put_object(Bucket="precious", Key="k", Body=b"keep me")
    server.stop()
    files = [p for p in (data / "blobs").rglob("*") if p.is_file()]
    then = time.time() - 7200
    for path in files:
        os.utime(path, (then, then))
    wrong = Server(data, meta_url=f"sqlite:{tmp_path / 'empty.db'}").start()
    try:
        deadline = time.monotonic() + 5
        while "holds no bucket" not in log_text(wrong):
            assert time.monotonic() < deadline, "the refusal is logged"
            time.sleep(0.2)
        assert all(p.exists() for p in files), "nothing swept"
    finally:
        wrong.stop()
    refused = subprocess.run([BIN, "fsck", "--data-dir", str(data), "--meta-url", f"sqlite:{tmp_path / 'empty.db'}",
                              "--remove-orphans"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "nothing removed" in refused.stderr, refused
    assert all(p.exists() for p in files)
    missing = subprocess.run([BIN, "fsck", "--data-dir", str(tmp_path / "nowhere")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2, missing
