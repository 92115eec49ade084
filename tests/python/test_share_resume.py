"""A share download that breaks mid-stream can be resumed with Range from the same address
within the grace period, without consuming another use; otherwise it is refused."""

import http.client
import os
import socket
import time

import requests

from conftest import Server
from test_shares import api, audit_reasons, mint

SIZE = 2 * 1024 * 1024


def broken_download(server, link):
    """Starts a download, reads part of it, and drops the connection."""
    path = link["api_url"].split(str(server.port), 1)[1]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received or len(received) < 300_000:
            received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    return body


def ranged_get(server, link, start, source="127.0.0.1"):
    path = link["api_url"].split(str(server.port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=(source, 0))
    conn.request("GET", path, headers={"Range": f"bytes={start}-"})
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

    # Another address cannot ride on that grant.
    status, _, _ = ranged_get(server, link, len(first), source="127.0.0.2")
    assert status == 403

    status, headers, rest = ranged_get(server, link, len(first))
    assert status == 206, rest[:200]
    assert headers["content-range"] == f"bytes {len(first)}-{SIZE - 1}/{SIZE}"
    assert first + rest == payload
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0
    events = [e for e, _ in audit_reasons(server, link["id"])]
    assert events == ["share.created", "share.redeemed", "share.denied", "share.resumed"]
    # Without Range it is a new download, and there are no uses left.
    assert requests.get(link["api_url"], timeout=10).status_code == 403


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
