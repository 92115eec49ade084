"""SigV4 streaming uploads (Content-Encoding: aws-chunked, per-chunk signatures), signed here
exactly as the SigV4 streaming specification describes, so a wrong chunk can be forged too."""

import hashlib
import hmac
import os

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def signing_key(date):
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def chunked_put(server, path, chunks, tamper_chunk=None):
    decoded_length = sum(len(c) for c in chunks)
    request = AWSRequest(method="PUT", url=f"{server.endpoint}{path}", headers={
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded_length),
    })
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    timestamp = request.headers["X-Amz-Date"]
    scope = f"{timestamp[:8]}/{REGION}/s3/aws4_request"
    key = signing_key(timestamp[:8])
    previous = request.headers["Authorization"].split("Signature=")[1]
    body = b""
    for i, chunk in enumerate([*chunks, b""]):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, EMPTY_SHA256,
                             hashlib.sha256(chunk).hexdigest()])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = chunk if i != tamper_chunk else chunk[:-1] + b"!"
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + sent + b"\r\n"
        previous = signature
    headers = dict(request.headers)
    headers["Content-Length"] = str(len(body))
    return requests.put(request.url, data=body, headers=headers, timeout=30)


def test_signed_chunks_upload_and_read_back(server, s3, bucket):
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]
    resp = chunked_put(server, f"/{bucket}/streamed", chunks)
    assert resp.status_code == 200, resp.text
    data = b"".join(chunks)
    assert resp.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data


def test_a_forged_chunk_is_refused_and_stores_nothing(server, s3, bucket):
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024)]
    resp = chunked_put(server, f"/{bucket}/forged", chunks, tamper_chunk=1)
    assert resp.status_code == 403, resp.text
    assert "<Code>SignatureDoesNotMatch</Code>" in resp.text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="forged")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
