"""The guard's limits on what a client may hold: a request head dripped byte by byte is cut off at
the header-read timeout, a request body that stops coming or a response left unread at the idle
timeout (while a slow body that keeps moving is served), connections are capped in all and per
address, networks are allowed and denied globally and per listener (for clients behind trusted
proxies too), and request lines and bodies over their limits are refused with S3's errors.
Every refusal is counted in `/-/metrics`."""

import hashlib
import socket
import time

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, free_port
from test_bad_input import error_code

TEST_NET = "192.0.2.2"  # an address of this machine's own (see conftest), for clients that are not loopback
WITH_METRICS = ["s3", "shares", "health", "metrics"]  # metrics are off the `listen` address by default


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
    server = Server(tmp_path / "data", config={"header_read_timeout_secs": 2, "surfaces": WITH_METRICS}).start()
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


@pytest.fixture
def idle_server(tmp_path):
    """A server that cuts off clients idle for 2 s (metrics served), with a bucket `idle`."""
    server = Server(tmp_path / "data", config={"idle_timeout_secs": 2, "surfaces": WITH_METRICS}).start()
    server.client().create_bucket(Bucket="idle")
    yield server
    server.stop()


def test_a_body_that_stops_coming_is_refused_and_leaves_nothing(idle_server):
    server, s3 = idle_server, idle_server.client()
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


def test_a_response_left_unread_is_cut_off(idle_server):
    server, s3 = idle_server, idle_server.client()
    size = 64 * 1024 * 1024
    s3.put_object(Bucket="idle", Key="big", Body=b"\0" * size)
    sock = connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(signed_head(server, "GET", "/idle/big", {}))
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


def capped_server(tmp_path, name, **config):
    """A server on this machine's non-loopback address, with a loopback listener for health and
    metrics (loopback connections are never capped)."""
    inside = free_port()
    server = Server(tmp_path / name, host=TEST_NET, config={
        **config, "listeners": [{"address": f"127.0.0.1:{inside}", "surfaces": ["health", "metrics"]}]}).start()
    local = Server.__new__(Server)
    local.endpoint = f"http://127.0.0.1:{inside}"
    return server, local


def test_connections_are_capped_per_address_and_in_all(tmp_path):
    server, local = capped_server(tmp_path, "per-ip", max_connections_per_ip=2)
    try:
        held = [connect(server), connect(server)]
        third = connect(server)
        assert closed_by_server(third, 5), "a third connection from one address is closed"
        assert requests.get(local.endpoint + "/-/health", timeout=5).status_code == 200, "loopback is not capped"
        held.pop().close()
        time.sleep(0.2)
        again = requests.get(server.endpoint + "/-/health", timeout=5)
        assert again.status_code == 200, "a freed place is taken again"
        assert refused(local, "connections_per_ip") == 1
    finally:
        server.stop()

    # A trusted proxy carries many clients: capped only in all.
    server, local = capped_server(tmp_path, "total", max_connections=2, max_connections_per_ip=1,
                                  trusted_proxies=[TEST_NET])
    try:
        held = [connect(server), connect(server)]
        assert closed_by_server(connect(server), 5), "the server holds its most connections"
        assert requests.get(local.endpoint + "/-/health", timeout=5).status_code == 200, "loopback still gets in"
        assert refused(local, "connections") == 1
        for sock in held:
            sock.close()
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


def h2_connection(server, ca, window=None):
    """An HTTP/2 connection over TLS (h2 library), optionally advertising a flow-control window."""
    import ssl

    import h2.config
    import h2.connection
    import h2.settings
    host, port = server.endpoint.split("://", 1)[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection((host, int(port)), timeout=15), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    sock.sendall(conn.data_to_send())
    return sock, conn


def h2_held(sock, conn, seconds):
    """Plays the client (acknowledging settings and pings, reading nothing of the data) for up to
    `seconds`: how long until the server closed the connection, or None."""
    import h2.events
    started = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - started < seconds:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, OSError):
            return time.monotonic() - started
        if not data:
            return time.monotonic() - started
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                return time.monotonic() - started
        if out := conn.data_to_send():
            sock.sendall(out)
    return None


def test_http2_responses_left_unread_and_idle_connections_are_cut(tmp_path):
    """Review finding: an HTTP/2 client advertising a zero window never blocks a write, so the
    socket-level idle timeout never ran while each of its streams held an open object."""
    from test_tls import make_ca, make_leaf
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki, "test-ca")
    leaf = make_leaf(pki, "server", ca)
    server = Server(tmp_path / "data", config={
        "tls_cert": str(leaf[0]), "tls_key": str(leaf[1]), "idle_timeout_secs": 2, "header_read_timeout_secs": 3,
        "surfaces": WITH_METRICS})
    server.ca = str(ca[0])
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION, verify=str(ca[0]),
                          config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="h2-unread")
        s3.put_object(Bucket="h2-unread", Key="big", Body=b"\0" * (8 * 1024 * 1024))
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "h2-unread", "Key": "big"})
        path = url.split(server.endpoint, 1)[1]
        host = server.endpoint.split("://", 1)[1]

        sock, conn = h2_connection(server, ca[0], window=0)
        for stream in range(1, 21, 2):
            conn.send_headers(stream, [(":method", "GET"), (":path", path), (":scheme", "https"),
                                       (":authority", host)], end_stream=True)
        sock.sendall(conn.data_to_send())
        closed_after = h2_held(sock, conn, 15)
        assert closed_after is not None and closed_after < 8, f"ten unread streams held for {closed_after}"
        sock.close()

        # An HTTP/2 connection idle after its request is closed too, as HTTP/1.1's are.
        sock, conn = h2_connection(server, ca[0])
        conn.send_headers(1, [(":method", "GET"), (":path", "/-/health"), (":scheme", "https"), (":authority", host)],
                          end_stream=True)
        sock.sendall(conn.data_to_send())
        closed_after = h2_held(sock, conn, 15)
        assert closed_after is not None and closed_after < 8, f"an idle HTTP/2 connection held for {closed_after}"
        sock.close()
        metrics = requests.get(server.endpoint + "/-/metrics", verify=str(ca[0]), timeout=10).text
        assert 'reason="idle_response"' in metrics
    finally:
        server.stop()


def test_stalled_xml_and_form_bodies_get_request_timeout_not_a_server_error(idle_server):
    """Review finding: s3s turned a stalled DeleteObjects body into 500 InternalError, and the
    IAM API called a stalled form too large."""
    server = idle_server
    sock = connect(server)
    sock.sendall(signed_head(server, "POST", "/idle?delete", {"Content-Length": "1000"}) + b"<Delete>")
    sock.settimeout(10)
    answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400") and "<Code>RequestTimeout</Code>" in answer, answer
    sock.close()
    sock = connect(server)
    host = server.endpoint.split("://", 1)[1]
    sock.sendall(f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 f"Content-Length: 1000\r\n\r\nAction=ListUsers".encode())
    answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400") and "<Code>RequestTimeout</Code>" in answer, answer
    sock.close()


def test_ipv4_mapped_list_entries_are_judged_as_ipv4(tmp_path):
    """Review finding: `::ffff:192.0.2.2` in a deny-list never matched, since clients are judged
    by their canonical (IPv4) address."""
    server = Server(tmp_path / "data", host=TEST_NET, config={"deny_cidrs": [f"::ffff:{TEST_NET}"]}).start()
    try:
        assert closed_by_server(connect(server), 5), "denied though written as IPv4-mapped IPv6"
    finally:
        server.stop()
