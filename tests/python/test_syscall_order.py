"""Durability by system-call order, which killing the process cannot show (the page cache survives
it): under strace, a PUT syncs its blob, renames it into blobs/, syncs that directory and only then
commits its record (a synced SQLite WAL write) and answers; a share redemption's commit is synced
before the first byte of the object reaches the client."""

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from conftest import Server
from test_shares import mint

STRACE = shutil.which("strace")
TRACED = "openat,write,writev,pwrite64,sendto,sendmsg,fsync,fdatasync,rename,renameat,renameat2"
START = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")


def syscalls(trace):
    """(name, arguments) of every traced call, in the order the calls returned."""
    calls, pending = [], {}
    for line in trace.read_text(errors="replace").splitlines():
        if match := RESUMED.match(line):
            pid, name, rest = match.groups()
            calls.append((name, pending.pop(pid, "") + rest))
        elif match := START.match(line):
            pid, name, rest = match.groups()
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest
            else:
                calls.append((name, rest))
    return calls


def first(calls, after, test, what):
    """Index of the first call past index `after` that passes `test`."""
    for i in range(after + 1, len(calls)):
        if test(*calls[i]):
            return i
    raise AssertionError(f"no {what} after call {after}: {calls[after + 1:after + 40]}")


def on(path_part):
    """Matches a call whose first argument is a descriptor naming a path that contains path_part
    (strace -y prints descriptors as 12</path>)."""
    return lambda args: re.match(r"\d+<([^>]*)>", args) is not None and path_part in args.split(">", 1)[0]


def wal_write(name, args):
    return name in ("write", "pwrite64") and on("meta.db-wal")(args)


def wal_sync(name, args):
    return name in ("fsync", "fdatasync") and on("meta.db-wal")(args)


def socket_write(text):
    return lambda name, args: name in ("write", "writev", "sendto", "sendmsg") and "TCP" in args and text in args


@pytest.mark.skipif(STRACE is None, reason="!!! strace is not installed: system-call order NOT checked !!!")
def test_a_put_and_a_redemption_sync_in_order(tmp_path):
    trace = tmp_path / "strace.txt"
    wrapper = [STRACE, "-f", "-qq", "-yy", "-s", "96", "-e", f"trace={TRACED}", "-o", str(trace)]
    srv = Server(tmp_path / "data", wrapper=wrapper).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="synced")
        # The bucket's creation is audited; its events are linked (a WAL write of their own)
        # within a second, before the PUT whose write order is checked.
        time.sleep(2)
        s3.put_object(Bucket="synced", Key="blob", Body=b"PUT-BODY " * 2000)
        link = mint(srv, "synced", "blob")
        redeemed = requests.get(link["api_url"], timeout=30)
        assert redeemed.status_code == 200 and redeemed.content == b"PUT-BODY " * 2000
    finally:
        # SIGTERM to the server itself (strace's child); strace exits with it.
        pid = srv.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        assert srv.stop() == 0
    calls = syscalls(trace)
    blobs = str(srv.data_dir / "blobs")

    # The PUT: its temporary file, synced, renamed into blobs/, the directory synced.
    in_tmp = re.compile(rf'"({re.escape(str(srv.data_dir / "tmp"))}/[^/"]+/[^/"]+)"')
    created = first(calls, -1, lambda n, a: n == "openat" and "O_CREAT" in a and in_tmp.search(a) is not None,
                    "temporary blob file created")
    tmp_file = in_tmp.search(calls[created][1]).group(1)
    blob_id = os.path.basename(tmp_file)
    synced = first(calls, created, lambda n, a: n in ("fsync", "fdatasync") and on(tmp_file)(a), "blob fsync")
    renamed = first(calls, synced, lambda n, a: n.startswith("rename") and tmp_file in a and blobs in a,
                    "rename into blobs/")
    fan_out = f"{blobs}/{blob_id[:2]}"
    dir_synced = first(calls, renamed, lambda n, a: n in ("fsync", "fdatasync") and on(fan_out)(a) and blob_id not in a,
                       "fsync of the blob's directory")
    committed = first(calls, dir_synced, wal_write, "WAL write of the record")
    durable = first(calls, committed, wal_sync, "WAL sync of the record")
    answered = first(calls, created, socket_write("HTTP/1.1 200"), "PUT response")
    assert not any(wal_write(*c) for c in calls[created:dir_synced]), "record written before its blob was durable"
    assert answered > durable, "PUT answered before its record was durable"

    # The redemption: the use is committed and synced before any byte of the object is sent.
    minted = first(calls, answered, socket_write("HTTP/1.1 201"), "mint response")
    used = first(calls, minted, wal_write, "WAL write of the use")
    use_durable = first(calls, used, wal_sync, "WAL sync of the use")
    sent = first(calls, minted, lambda n, a: socket_write("HTTP/1.1 200")(n, a) or socket_write("PUT-BODY")(n, a),
                 "first redemption bytes")
    assert sent > use_durable, "object bytes sent before the use was durable"
