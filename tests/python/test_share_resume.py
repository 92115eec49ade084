"""A share download that breaks mid-stream can be resumed with Range by the same client (address
and User-Agent) within the grace period, without consuming another use, but one use never serves
more than the object's size plus the overlap allowance (1 MiB by default) in all; otherwise it is
refused."""

import http.client
import os
import socket
import sqlite3
import subprocess
import time

import requests

from conftest import PG_URL, Server
from test_shares import api, audit_reasons, mint

SIZE = 2 * 1024 * 1024


def audit_events(server, share_id):
    """(event, reason) of the share's rows in audit_events, in order."""
    query = f"SELECT event, COALESCE(reason, '') FROM audit_events WHERE share_id = '{share_id}'"
    if server.meta_url:
        out = subprocess.run(["psql", PG_URL, "-tAF", "|", "-c", f"SET search_path TO {server.schema()}; {query} ORDER BY seq"],
                             capture_output=True, text=True, check=True).stdout
        return [tuple(line.split("|")) for line in out.splitlines() if "|" in line]
    with sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True) as db:
        return [tuple(row) for row in db.execute(f"{query} ORDER BY rowid")]


def broken_download(server, link):
    """Starts a download, reads part of it, and drops the connection. The small receive buffer
    keeps what is in flight when it breaks under the overlap allowance, as on a real network."""
    path = link["api_url"].split(str(server.port), 1)[1]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        # Break off with at most 512 KiB of the object unread, so that what the server had handed
        # to the kernel but the client never read stays under the 1 MiB overlap whatever the
        # loopback buffers hold (with 300 kB read, a 4 MiB send buffer made the resume flaky).
        while b"\r\n\r\n" not in received or len(received) < SIZE - 512 * 1024:
            received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    return body


def ranged_get(server, link, start, source="127.0.0.1", end="", agent=None):
    path = link["api_url"].split(str(server.port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=(source, 0))
    headers = {"Range": f"bytes={start}-{end}"}
    if agent:
        headers["User-Agent"] = agent
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    status, headers, body = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return status, headers, body


def test_resume_within_the_grace_from_the_same_address(server, s3, bucket):
    payload = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=payload)
    link = mint(server, bucket, "big.bin")
    first = broken_download(server, link)
    assert 0 < len(first) < SIZE
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0

    # Another address, or another program at the same address, cannot ride on that grant.
    status, _, _ = ranged_get(server, link, len(first), source="127.0.0.2")
    assert status == 403
    status, _, _ = ranged_get(server, link, len(first), agent="curl/8.5.0")
    assert status == 403

    status, headers, rest = ranged_get(server, link, len(first))
    assert status == 206, rest[:200]
    assert headers["content-range"] == f"bytes {len(first)}-{SIZE - 1}/{SIZE}"
    assert first + rest == payload
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0
    assert audit_events(server, link["id"]) == [
        ("share.created", ""), ("share.redeemed", ""), ("share.denied", "used"), ("share.denied", "used"),
        ("share.resumed", ""),
    ]
    # Without Range it is a new download, and there are no uses left.
    assert requests.get(link["api_url"], timeout=10).status_code == 403
    # The resume served the rest; the whole object once more goes past the allowance.
    status, _, _ = ranged_get(server, link, 0)
    assert status == 403
    assert audit_events(server, link["id"])[-2:] == [("share.denied", "used"), ("share.denied", "resume_exhausted")]


def test_a_spent_use_is_not_served_again_by_range(server, s3, bucket):
    payload = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key="once.bin", Body=payload)
    link = mint(server, bucket, "once.bin")
    assert requests.get(link["api_url"], timeout=10).content == payload
    # The whole object went out; what is left is the 1 MiB overlap allowance, then nothing.
    half = 512 * 1024
    for _ in range(2):
        status, _, body = ranged_get(server, link, 0, end=half - 1, agent=requests.utils.default_user_agent())
        assert (status, body) == (206, payload[:half])
    for _ in range(5):
        status, _, _ = ranged_get(server, link, 0, agent=requests.utils.default_user_agent())
        assert status == 403
        resp = requests.get(link["api_url"], headers={"Range": "bytes=0-0"}, timeout=10)
        assert resp.status_code == 403 and "not valid" in resp.text
    events = audit_events(server, link["id"])
    assert events[:4] == [("share.created", ""), ("share.redeemed", ""), ("share.resumed", ""), ("share.resumed", "")]
    assert events[4:] == [("share.denied", "resume_exhausted")] * 10


def test_no_resume_after_revocation(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="revoked.bin", Body=os.urandom(SIZE))
    link = mint(server, bucket, "revoked.bin")
    first = broken_download(server, link)
    assert api(server, "DELETE", f"/-/shares/{link['id']}").status_code == 204
    status, _, _ = ranged_get(server, link, len(first))
    assert status == 403
    assert audit_events(server, link["id"])[-1] == ("share.denied", "revoked")


def test_no_resume_after_expiry(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="expiring.bin", Body=os.urandom(SIZE))
    link = mint(server, bucket, "expiring.bin", expires_in=1)
    first = broken_download(server, link)
    time.sleep(1.1)  # the link's lifetime, not a flush
    status, _, _ = ranged_get(server, link, len(first))
    assert status == 403
    assert audit_events(server, link["id"])[-1] == ("share.denied", "expired")


def test_an_unbounded_resume_grace_is_refused_at_startup(tmp_path):
    srv = Server(tmp_path / "data", config={"share_resume_grace_secs": 10**15})
    try:
        srv.start()
        raise AssertionError("latchkey started with a resume grace of 10^15 seconds")
    except RuntimeError as e:
        assert "exited early" in str(e)
    finally:
        srv.stop()
    assert "share_resume_grace_secs must be at most 86400" in srv.stderr_text()


def test_a_first_range_request_consumes_a_use(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="r.bin", Body=b"0123456789" * 10)
    link = mint(server, bucket, "r.bin", max_uses=2)
    resp = requests.get(link["api_url"], headers={"Range": "bytes=10-19"}, timeout=10)
    assert resp.status_code == 206 and resp.content == b"0123456789"
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 1
    unsatisfiable = requests.get(link["api_url"], headers={"Range": "bytes=500-"}, timeout=10)
    assert unsatisfiable.status_code == 416
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 1


def test_no_resume_after_the_grace(tmp_path):
    srv = Server(tmp_path / "data", config={"share_resume_grace_secs": 1}).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="grace")
        s3.put_object(Bucket="grace", Key="big.bin", Body=os.urandom(SIZE))
        link = mint(srv, "grace", "big.bin")
        first = broken_download(srv, link)
        time.sleep(1.5)
        status, _, _ = ranged_get(srv, link, len(first))
        assert status == 403
        assert audit_reasons(srv, link["id"])[-1] == ("share.denied", "used")
    finally:
        srv.kill9()


def test_a_small_object_is_not_served_again_and_again(server, s3, bucket):
    """The overlap allowance never exceeds the object: a 100 kB file spent by one download is
    not handed out whole again on each `Range: bytes=0-`."""
    payload = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="small.bin", Body=payload)
    link = mint(server, bucket, "small.bin")
    agent = requests.utils.default_user_agent()
    assert requests.get(link["api_url"], headers={"User-Agent": agent}, timeout=10).content == payload
    served = [ranged_get(server, link, 0, agent=agent)[0] for _ in range(5)]
    # bytes=0- is the whole object (200); it fits the overlap once, never again.
    assert served == [200, 403, 403, 403, 403], served


def test_a_refused_link_does_not_tell_its_size_through_the_range(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="sized.bin", Body=os.urandom(SIZE))
    link = mint(server, bucket, "sized.bin")
    assert api(server, "DELETE", f"/-/shares/{link['id']}").status_code == 204
    # One byte past the end would be unsatisfiable (416) on a live link; a revoked one says 403.
    assert ranged_get(server, link, SIZE - 1)[0] == 403
    assert ranged_get(server, link, SIZE)[0] == 403
