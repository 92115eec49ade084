"""Logs never carry what would let a reader forge a request, whatever RUST_LOG says."""

import threading

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server

WRONG_SECRET = "not-the-secret-key-of-this-server-000000"


def text_headers(prepared):
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}


def sigv4_signature(prepared, secret):
    """The SigV4 signature of a request botocore sent, recomputed with another secret."""
    headers = text_headers(prepared)
    signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in headers.items() if k.lower() in signed}
    request = botocore.awsrequest.AWSRequest(method=prepared.method, url=prepared.url, headers=headers,
                                             data=prepared.body)
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, secret), "s3", REGION)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


def test_rust_log_trace_does_not_log_the_signature_the_server_expected(tmp_path):
    srv = Server(tmp_path / "data", env={"RUST_LOG": "trace"}).start()
    try:
        client = srv.client()
        client._request_signer._credentials = botocore.credentials.Credentials(ACCESS_KEY, WRONG_SECRET)
        sent = []
        client.meta.events.register("before-send.s3.ListBuckets", lambda request, **_: sent.append(request))
        with pytest.raises(ClientError) as refused:
            client.list_buckets()
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        assert srv.stop() == 0

    (request,) = sent
    authorization = text_headers(request)["Authorization"]
    # The recomputation is right: with the wrong secret it gives the signature actually sent.
    assert authorization.endswith("Signature=" + sigv4_signature(request, WRONG_SECRET))
    correct = sigv4_signature(request, SECRET_KEY)
    log = srv.stderr_text()
    assert " DEBUG " in log, "RUST_LOG=trace did not reach the server"
    assert correct not in log
    for leak in ("signature mismatch", "string_to_sign", "canonical_request", "expected_signature", WRONG_SECRET):
        assert leak not in log


def test_a_stalled_log_reader_does_not_stall_requests(tmp_path):
    srv = Server(tmp_path / "data", log_pipe=True).start()
    drained = []
    try:
        # Nobody reads the log yet: the pipe (64 KiB) fills after a few hundred access-log lines.
        with requests.Session() as session:
            for n in range(3000):
                assert session.get(f"{srv.endpoint}/stall-{n}", timeout=5).status_code == 403
    finally:
        reader = threading.Thread(target=lambda: drained.append(srv.proc.stderr.read()))
        reader.start()
        assert srv.stop() == 0
        reader.join(timeout=30)
    # The lines queued while the pipe was full were written once it drained.
    assert '"path":"/stall-2999",' in drained[0] and '"status":403' in drained[0]
