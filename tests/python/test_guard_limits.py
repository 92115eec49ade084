"""The guard's limits on what a client may hold: a request head dripped byte by byte is cut off at
the header-read timeout, a request body that stops coming or a response left unread at the idle
timeout (while a slow body that keeps moving is served), connections are capped in all and per
address, networks are allowed and denied globally and per listener (for clients behind trusted
proxies too), and request lines and bodies over their limits are refused with S3's errors.
Every refusal is counted in `/-/metrics`."""

import hashlib
import socket
import time

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, free_port
from test_bad_input import error_code

TEST_NET = "192.0.2.2"  # an address of this machine's own (see conftest), for clients that are not loopback


def signed_head(server, method, path, headers, payload_hash="UNSIGNED-PAYLOAD"):
    """The bytes of a SigV4-signed request head, for a raw socket that then misbehaves."""
    request = AWSRequest(method=method, url=server.endpoint + path,
                         headers={"x-amz-content-sha256": payload_hash, **headers})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    host = server.endpoint.split("://", 1)[1]
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused(server, reason):
    """How many refusals of this reason `/-/metrics` counts."""
    text = requests.get(server.endpoint + "/-/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("latchkey_refused_total{") and f'reason="{reason}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def connect(server):
    host, port = server.endpoint.split("://", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=15)


def closed_by_server(sock, within):
    """Whether the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_a_dripped_request_head_is_cut_off_while_others_are_served(tmp_path):
    server = Server(tmp_path / "data", config={"header_read_timeout_secs": 2}).start()
    try:
        head = b"GET /-/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        sock = connect(server)
        started, sent, served = time.monotonic(), 0, []
        try:
            while sent < len(head):
                sock.sendall(head[sent:sent + 1])
                sent += 1
                served.append(requests.get(server.endpoint + "/-/health", timeout=5).status_code)
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_by_server(sock, 5)
        elapsed = time.monotonic() - started
        assert elapsed < 6, f"the dripping client held its connection for {elapsed:.1f} s"
        assert served and set(served) == {200}, "other clients are served meanwhile"
        assert refused(server, "header_timeout") >= 1
    finally:
        server.stop()


def test_a_body_that_stops_coming_is_refused_and_leaves_nothing(tmp_path):
    server = Server(tmp_path / "data", config={"idle_timeout_secs": 2}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="idle")
        sock = connect(server)
        sock.sendall(signed_head(server, "PUT", "/idle/stalled", {"Content-Length": "1000000"}) + b"0" * 700_000)
        time.sleep(0.5)
        assert server.tmp_files(), "the upload is under way"
        sock.settimeout(10)
        started = time.monotonic()
        answer = sock.recv(65536).decode()
        assert time.monotonic() - started < 5
        assert answer.startswith("HTTP/1.1 400") and "<Code>RequestTimeout</Code>" in answer, answer
        sock.close()
        deadline = time.monotonic() + 5
        while server.tmp_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.tmp_files() == []
        assert s3.list_objects_v2(Bucket="idle")["KeyCount"] == 0
        assert refused(server, "idle_body") == 1

        # A body that keeps moving, however slowly, is not cut: pauses shorter than the timeout.
        sock = connect(server)
        body = b"x" * 40
        sock.sendall(signed_head(server, "PUT", "/idle/slow", {"Content-Length": str(len(body))}))
        for i in range(0, len(body), 10):
            time.sleep(1)
            sock.sendall(body[i:i + 10])
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "a slow body is served"
        sock.close()
        assert s3.get_object(Bucket="idle", Key="slow")["Body"].read() == body
    finally:
        server.stop()


def test_a_response_left_unread_is_cut_off(tmp_path):
    server = Server(tmp_path / "data", config={"idle_timeout_secs": 2}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="unread")
        size = 64 * 1024 * 1024
        s3.put_object(Bucket="unread", Key="big", Body=b"\0" * size)
        sock = connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(signed_head(server, "GET", "/unread/big", {}))
        time.sleep(5)  # reads nothing: the server's writes stall
        received = 0
        sock.settimeout(10)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert 0 < received < size, f"{received} bytes of {size}: the connection was not cut"
        assert refused(server, "idle_response") == 1
        assert requests.get(server.endpoint + "/-/health", timeout=5).status_code == 200
    finally:
        server.stop()


def test_connections_are_capped_per_address_and_in_all(tmp_path):
    inside = free_port()
    server = Server(tmp_path / "data", host=TEST_NET, config={
        "max_connections_per_ip": 2, "max_connections": 4,
        "listeners": [{"address": f"127.0.0.1:{inside}", "surfaces": ["health", "metrics"]}],
    }).start()
    local = Server.__new__(Server)
    local.endpoint = f"http://127.0.0.1:{inside}"
    try:
        held = [connect(server), connect(server)]
        third = connect(server)
        assert closed_by_server(third, 5), "a third connection from one address is closed"
        assert requests.get(local.endpoint + "/-/health", timeout=5).status_code == 200, "other addresses served"
        held.pop().close()
        time.sleep(0.2)
        again = requests.get(server.endpoint + "/-/health", timeout=5)
        assert again.status_code == 200, "a freed place is taken again"
        # Loopback is not capped per address, only in all: 1 + 2 held, the fourth is the last.
        loopback = [connect(local), connect(local)]
        fifth = connect(local)
        assert closed_by_server(fifth, 5), "the server holds its most connections"
        for sock in held + loopback:
            sock.close()
        time.sleep(0.3)
        assert refused(local, "connections_per_ip") == 1
        assert refused(local, "connections") >= 1
    finally:
        server.stop()


def test_networks_are_allowed_and_denied_globally_and_per_listener(tmp_path):
    behind_proxy = free_port()
    server = Server(tmp_path / "data", host=TEST_NET, config={
        "trusted_proxies": ["127.0.0.1"],
        "networks": {"deny": ["203.0.113.0/24"]},
        "deny_cidrs": [f"{TEST_NET}/32"],  # the `listen` listener refuses this machine's own address
        "listeners": [{"address": f"127.0.0.1:{behind_proxy}", "surfaces": ["s3", "health", "metrics"],
                       "allow_cidrs": ["198.51.100.0/24", "203.0.113.0/24"]}],
    }).start()
    proxy = f"http://127.0.0.1:{behind_proxy}"
    try:
        sock = connect(server)
        assert closed_by_server(sock, 5), "a denied peer's connection is closed unread"

        def via(ip, path="/-/health"):
            return requests.get(proxy + path, headers={"X-Forwarded-For": ip}, timeout=5)
        assert via("198.51.100.7").status_code == 200
        outside = via("192.0.2.50")
        assert (outside.status_code, outside.text) == (403, "Forbidden\n"), "outside the listener's allow-list"
        denied = via("203.0.113.9")
        assert (denied.status_code, denied.text) == (403, "Forbidden\n"), "the global deny-list wins"
        s3_denied = via("203.0.113.9", "/")
        assert (s3_denied.status_code, error_code(s3_denied)) == (403, "AccessDenied")
        metrics = requests.get(proxy + "/-/metrics", headers={"X-Forwarded-For": "198.51.100.7"}, timeout=5).text
        network = [line for line in metrics.splitlines() if line.startswith("latchkey_refused_total{") and "network" in line]
        assert network and float(network[0].rsplit(" ", 1)[1]) == 4
    finally:
        server.stop()


def test_request_lines_and_bodies_over_their_limits_get_s3_errors(server, s3, bucket):
    long_key = "k" * 9000
    resp = requests.get(f"{server.endpoint}/{bucket}/{long_key}", timeout=10)
    assert (resp.status_code, error_code(resp)) == (400, "InvalidURI")
    resp = requests.get(f"{server.endpoint}/-/health?{long_key}", timeout=10)
    assert (resp.status_code, resp.text) == (414, "URI Too Long\n")

    # A PutObject over S3's 5 GiB is refused from its Content-Length, before a byte is read.
    sock = connect(server)
    sock.sendall(signed_head(server, "PUT", f"/{bucket}/huge", {"Content-Length": str(5 * 1024 ** 3 + 1)}))
    sock.settimeout(10)
    answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400") and "<Code>EntityTooLarge</Code>" in answer, answer
    sock.close()

    # An XML body over 20 MiB (s3s's limit: DeleteObjects of 1000 keys is far below it).
    body = b"<Tagging><TagSet>" + b" " * (20 * 1024 * 1024) + b"</TagSet></Tagging>"
    request = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}?tagging", data=body,
                         headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    resp = requests.put(request.url, data=body, headers=dict(request.headers), timeout=30)
    assert (resp.status_code, error_code(resp)) == (400, "MaxMessageLengthExceeded"), resp.text

    # The IAM and STS APIs read their forms up to their limit.
    form = b"Action=ListUsers&Version=2010-05-08&Pad=" + b"a" * (2 * 1024 * 1024)
    resp = requests.post(server.endpoint + "/", data=form, timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400 and "exceeds 262144 bytes" in resp.text, resp.text
