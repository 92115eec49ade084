"""TLS on the listener: certificates made here (a test CA and leaves signed by it, with the openssl
command line), the AWS CLI with a CA bundle, boto3, curl (HTTP/2 by ALPN), HSTS, share links on
https, `aws:SecureTransport` in policies, plain HTTP from loopback only, and a certificate swapped
on SIGHUP while a download goes on."""

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server
from test_identity import allow, error_code, new_user, signed_api


def openssl(*args, cwd):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_ca(directory, name):
    """A CA certificate and key (EC P-256): paths (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=directory)
    return cert, key


def make_leaf(directory, name, ca, addresses=("127.0.0.1",)):
    """A server certificate for `addresses` and localhost signed by `ca`: paths (cert, key)."""
    cert, key, csr, ext = (directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
    san = ",".join([*(f"IP:{a}" for a in addresses), "DNS:localhost"])
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext, cwd=directory)
    return cert, key


@pytest.fixture
def pki(tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = make_ca(directory, "test-ca")
    return directory, ca, make_leaf(directory, "server", ca)


def tls_server(tmp_path, leaf, ca, **config):
    """A server with TLS on; the shared helpers' clients trust `ca` (`Server.ca`)."""
    server = Server(tmp_path / "data", config={"tls_cert": str(leaf[0]), "tls_key": str(leaf[1]), **config})
    server.ca = str(ca)
    return server.start()


def tls_client(server, ca, service="s3", key_id=ACCESS_KEY, secret=SECRET_KEY):
    return boto3.client(service, endpoint_url=server.endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, region_name=REGION, verify=str(ca),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_the_aws_cli_boto3_and_curl_speak_tls_to_it(tmp_path, pki):
    _, ca, leaf = pki
    server = tls_server(tmp_path, leaf, ca[0])
    try:
        assert server.endpoint.startswith("https://127.0.0.1:")
        s3 = tls_client(server, ca[0])
        s3.create_bucket(Bucket="secure")
        s3.put_object(Bucket="secure", Key="hello.txt", Body=b"over tls")
        assert s3.get_object(Bucket="secure", Key="hello.txt")["Body"].read() == b"over tls"

        home = tmp_path / "home"
        env = server.cli_env(home)
        listed = subprocess.run(["aws", "--endpoint-url", server.endpoint, "--ca-bundle", str(ca[0]),
                                 "s3", "ls", "s3://secure/"], capture_output=True, text=True, env=env, timeout=60)
        assert listed.returncode == 0 and "hello.txt" in listed.stdout, listed.stderr
        # Without the CA the CLI refuses the certificate: the server is not trusted by accident.
        untrusted = subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3", "ls", "s3://secure/"],
                                   capture_output=True, text=True, env=env, timeout=60)
        assert untrusted.returncode != 0 and "SSL" in untrusted.stderr, untrusted.stderr

        url = s3.generate_presigned_url("get_object", Params={"Bucket": "secure", "Key": "hello.txt"}, ExpiresIn=60)
        headers = tmp_path / "headers.txt"
        curl = subprocess.run(["curl", "-sS", "--cacert", str(ca[0]), "--http2", "-D", str(headers),
                               "-w", "\nversion=%{http_version}", url], capture_output=True, text=True, timeout=60)
        assert curl.returncode == 0, curl.stderr
        assert curl.stdout == "over tls\nversion=2", curl.stdout
        head = headers.read_text().lower()
        assert "strict-transport-security: max-age=31536000" in head, head
        # The SDK sent the body aws-chunked (over TLS it adds a checksum trailer); that is how the
        # body travelled, not an encoding of the object.
        assert "content-encoding" not in head, head
        http1 = subprocess.run(["curl", "-sS", "--cacert", str(ca[0]), "--http1.1", "-o", "/dev/null",
                                "-w", "%{http_version}", url], capture_output=True, text=True, timeout=60)
        assert http1.stdout == "1.1", http1.stderr
    finally:
        server.stop()


def test_share_links_are_https_and_secure_transport_is_true_only_over_tls(tmp_path, pki):
    """The classic bucket policy that denies requests not over TLS: the same user reads over
    https and is refused over plain http (loopback, which the default still serves in plain)."""
    _, ca, leaf = pki
    server = tls_server(tmp_path, leaf, ca[0])
    try:
        s3 = tls_client(server, ca[0])
        s3.create_bucket(Bucket="tls-only")
        s3.put_object(Bucket="tls-only", Key="report.pdf", Body=b"%PDF")
        s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
        name, key_id, secret = new_user(server, allow(
            ["s3:GetObject", "latchkey:CreateShare"], "arn:aws:s3:::tls-only/*"))
        secure = tls_client(server, ca[0], key_id=key_id, secret=secret)
        assert secure.get_object(Bucket="tls-only", Key="report.pdf")["Body"].read() == b"%PDF"
        plain = boto3.client("s3", endpoint_url=server.endpoint.replace("https://", "http://"),
                             aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION,
                             config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        assert error_code(lambda: plain.get_object(Bucket="tls-only", Key="report.pdf")) == "AccessDenied"
        plain_resp = requests.get(server.endpoint.replace("https://", "http://") + "/-/health", timeout=10)
        assert plain_resp.status_code == 200 and "strict-transport-security" not in plain_resp.headers

        made = signed_api(server, "POST", "/-/shares",
                          {"bucket": "tls-only", "key": "report.pdf"}, ACCESS_KEY, SECRET_KEY)
        assert made.status_code == 201, made.text
        link = made.json()
        assert link["url"].startswith(server.endpoint + "/-/s/"), link["url"]
        assert requests.get(link["api_url"], verify=str(ca[0]), timeout=10).content == b"%PDF"
    finally:
        server.stop()


def non_loopback_address():
    """This machine's address on its primary interface (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_plain_http_is_refused_except_from_loopback(tmp_path, pki):
    directory, ca, _ = pki
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    leaf = make_leaf(directory, "outside", ca, addresses=(address,))
    server = Server(tmp_path / "data", host=address,
                    config={"tls_cert": str(leaf[0]), "tls_key": str(leaf[1])}).start()
    try:
        assert server.endpoint == f"https://{address}:{server.port}"
        plain = requests.get(f"http://{address}:{server.port}/-/health", timeout=10)
        assert (plain.status_code, plain.text.strip()) == (400, "This server speaks HTTPS only: use an https:// URL.")
        assert requests.get(f"{server.endpoint}/-/health", verify=str(ca[0]), timeout=10).text == "ok\n"
    finally:
        server.stop()
    # Loopback too, once the config says so.
    (tmp_path / "strict").mkdir()
    loopback = tls_server(tmp_path / "strict", pki[2], ca[0], plain_http_from_loopback=False, hsts_max_age_secs=0)
    try:
        plain = requests.get(loopback.endpoint.replace("https://", "http://") + "/-/health", timeout=10)
        assert plain.status_code == 400
        secure = requests.get(loopback.endpoint + "/-/health", verify=str(ca[0]), timeout=10)
        assert secure.status_code == 200 and "strict-transport-security" not in secure.headers
    finally:
        loopback.stop()


def served_certificate(endpoint, ca):
    """The DER certificate a TLS handshake with `endpoint` shows, verified against `ca`."""
    host, port = endpoint.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def test_sighup_swaps_the_certificate_while_a_download_goes_on(tmp_path, pki):
    directory, ca, leaf = pki
    server = tls_server(tmp_path, leaf, ca[0])
    try:
        s3 = tls_client(server, ca[0])
        s3.create_bucket(Bucket="big")
        body = os.urandom(24 * 1024 * 1024)
        s3.put_object(Bucket="big", Key="blob", Body=body)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "big", "Key": "blob"}, ExpiresIn=300)
        download = requests.get(url, stream=True, verify=str(ca[0]), timeout=30)
        chunks = download.iter_content(256 * 1024)
        received = [next(chunks)]
        before = served_certificate(server.endpoint, ca[0])

        # Another CA's certificate in the same files, then SIGHUP.
        other_ca = make_ca(directory, "other-ca")
        renewed = make_leaf(directory, "renewed", other_ca)
        leaf[0].write_bytes(renewed[0].read_bytes())
        leaf[1].write_bytes(renewed[1].read_bytes())
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "TLS certificate reloaded" not in server.stderr_text():
            assert time.monotonic() < deadline, "the server did not log the reload"
            time.sleep(0.05)
        after = served_certificate(server.endpoint, other_ca[0])
        assert after != before
        with pytest.raises(ssl.SSLCertVerificationError):
            served_certificate(server.endpoint, ca[0])

        # The download begun before the swap finishes, whole, on its own connection.
        received.extend(chunks)
        assert hashlib.sha256(b"".join(received)).digest() == hashlib.sha256(body).digest()

        # A swap to files that do not fit keeps the certificate in use.
        leaf[1].write_text("not a key")
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "cannot reload the TLS certificate" not in server.stderr_text():
            assert time.monotonic() < deadline, "the server did not log the failed reload"
            time.sleep(0.05)
        assert served_certificate(server.endpoint, other_ca[0]) == after
    finally:
        server.stop()


def test_a_certificate_that_cannot_be_read_stops_the_start_with_a_reason(tmp_path, pki):
    _, _, leaf = pki
    broken = Server(tmp_path / "data", config={"tls_cert": str(leaf[0]), "tls_key": str(tmp_path / "missing.key")},
                    log_pipe=True)
    with pytest.raises(RuntimeError, match="exited early"):
        broken.start()
    message = broken.proc.stderr.read()
    assert "cannot set up TLS" in message and "missing.key" in message, message


def test_a_connection_that_sends_no_request_is_closed_at_the_header_timeout(tmp_path, pki):
    """Also after a finished TLS handshake (review finding: HTTP/1.1 or HTTP/2 was told apart by
    reading, untimed, the first bytes of a request that never came)."""
    _, ca, leaf = pki
    server = tls_server(tmp_path, leaf, ca[0], header_read_timeout_secs=2)
    try:
        host, port = "127.0.0.1", server.port
        for alpn in (["http/1.1"], ["h2"], None):
            context = ssl.create_default_context(cafile=str(ca[0]))
            if alpn:
                context.set_alpn_protocols(alpn)
            with socket.create_connection((host, port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    started = time.monotonic()
                    assert tls.recv(1024) in (b"", ) or alpn == ["h2"], "HTTP/1.1 sends nothing before closing"
                    if alpn == ["h2"]:  # the server's SETTINGS first, then the close
                        while tls.recv(1024):
                            pass
                    assert time.monotonic() - started < 8, f"{alpn}: still open"
        with socket.create_connection((host, port), timeout=10) as plain:  # loopback plain HTTP, idle
            started = time.monotonic()
            assert plain.recv(1024) == b""
            assert time.monotonic() - started < 8
    finally:
        server.stop()


def test_an_early_sighup_does_not_stop_the_server(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        assert server.proc.poll() is None
        assert requests.get(server.endpoint + "/-/health", timeout=10).text == "ok\n"
    finally:
        server.stop()
