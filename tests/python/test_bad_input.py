"""Bad input gets the right S3 error, loses nothing, and the server keeps serving."""

import datetime
import http.client
import socket
import time
import uuid
from pathlib import Path
from unittest import mock

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY


def signed(server, method, path, body=b"", headers=None, secret=SECRET_KEY, access=ACCESS_KEY, when=None):
    """Sends a SigV4-signed raw request (for bodies and headers no SDK would produce)."""
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body, headers=headers or {})
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    auth = SigV4Auth(Credentials(access, secret), "s3", REGION)
    if when is None:
        auth.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(request)
    return requests.request(method, request.url, data=body, headers=dict(request.headers), timeout=10)


def error_code(resp):
    assert "<Error>" in resp.text, resp.text
    return resp.text.split("<Code>")[1].split("</Code>")[0]


def still_serving(s3):
    assert "Buckets" in s3.list_buckets()


@pytest.mark.parametrize("body", [
    b"<Delete><Object><Key>a</Key>",
    b"not xml at all",
    b"<Delete><Object><Key>a</Key></Object></Delete><trailing/>",
])
def test_malformed_xml_bodies(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="a", Body=b"kept")
    resp = signed(server, "POST", f"/{bucket}?delete", body, {"Content-Type": "application/xml"})
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"
    assert resp.headers["x-amz-request-id"]
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"kept"

    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    resp = signed(server, "POST", f"/{bucket}/mp?uploadId={uid}", body)
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"
    resp = signed(server, "PUT", f"/{bucket}/a?tagging", body)
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"
    still_serving(s3)


@pytest.mark.parametrize("name", ["UPPER", "ab", "a..b", "under_score", "192.168.1.1", "x" * 64, "-leading", "trailing-"])
def test_invalid_bucket_names(server, s3, name):
    resp = signed(server, "PUT", f"/{name}")
    assert resp.status_code == 400 and error_code(resp) == "InvalidBucketName"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_keys_never_escape_the_data_dir(server, s3, bucket, tmp_path):
    marker = f"latchkey-escape-{uuid.uuid4().hex}"
    keys = [f"../../../../../../../../tmp/{marker}", f"/tmp/{marker}", f"a/../../{marker}", "./."]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert not Path(f"/tmp/{marker}").exists()
    assert not list(Path("/").glob(f"*/{marker}")) and not list(server.data_dir.parent.glob(f"**/{marker}"))
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)

    # A raw path that walks out of the bucket is not a file read either.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/../../../../etc/passwd")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status in (400, 403) and b"root:" not in body
    conn.close()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert e.value.response["Error"]["Code"] == "KeyTooLongError"
    # NUL cannot be stored by every metadata backend, so no backend accepts it, anywhere.
    for call in [lambda: s3.put_object(Bucket=bucket, Key="nul\x00byte", Body=b"x"),
                 lambda: s3.get_object(Bucket=bucket, Key="nul\x00byte"),
                 lambda: s3.list_objects_v2(Bucket=bucket, Prefix="a\x00"),
                 lambda: s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "x\x00"})]:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "InvalidArgument"
    still_serving(s3)


def test_wrong_signature_and_unknown_key(server, bucket):
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    wrong = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key="not-the-secret", region_name=REGION,
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        wrong.get_object(Bucket=bucket, Key="k")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    url = wrong.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    assert error_code(requests.get(url, timeout=10)) == "SignatureDoesNotMatch"

    unknown = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="LKUNKNOWNKEY00000000",
                           aws_secret_access_key=SECRET_KEY, region_name=REGION,
                           config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    still_serving(s3)


def test_clock_skew_over_fifteen_minutes(server, s3):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    late = signed(server, "GET", "/", when=now - datetime.timedelta(minutes=16))
    assert late.status_code == 403 and error_code(late) == "RequestTimeTooSkewed"
    early = signed(server, "GET", "/", when=now + datetime.timedelta(minutes=16))
    assert early.status_code == 403 and error_code(early) == "RequestTimeTooSkewed"
    assert signed(server, "GET", "/", when=now - datetime.timedelta(minutes=5)).status_code == 200


def test_oversized_headers(server, s3, bucket):
    resp = requests.get(f"{server.endpoint}/{bucket}/k", headers={"x-filler": "a" * 9000}, timeout=10)
    assert resp.status_code == 400 and error_code(resp) == "RequestHeaderSectionTooLarge"
    assert resp.headers["x-amz-request-id"]
    still_serving(s3)


def test_anonymous_requests_are_denied_uniformly(server, bucket):
    for method, path in [("GET", "/"), ("PUT", f"/{bucket}/k"), ("GET", f"/{bucket}"), ("DELETE", f"/{bucket}")]:
        resp = requests.request(method, f"{server.endpoint}{path}", timeout=10)
        assert resp.status_code == 403 and error_code(resp) == "AccessDenied", (method, path)
        assert resp.headers["x-amz-request-id"]


def test_truncated_upload_leaves_no_object(fresh_server):
    # A server of its own: on the shared one, an upload another test left hanging can create its
    # temporary file at any moment (once a batch of its body has arrived) and look like this one's.
    server, bucket = fresh_server, "truncated"
    s3 = server.client()
    s3.create_bucket(Bucket=bucket)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "half"}, ExpiresIn=60)
    target = url.split(str(server.port), 1)[1]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: 1000000\r\n\r\n".encode()
        )
        sock.sendall(b"x" * 300_000)
    # The server notices the disconnect, discards the partial blob and commits nothing. Its
    # temporary file may not exist yet when the client is gone (it is made once a batch of the
    # body has arrived): the request is over when its access-log line is written.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and '"path":"/truncated/half"' not in server.stderr_text():
        time.sleep(0.05)
    assert '"path":"/truncated/half"' in server.stderr_text()
    while time.monotonic() < deadline and server.tmp_files():
        time.sleep(0.05)
    assert not server.tmp_files()
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="half")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    # Declared length longer than the body that arrives before the client half-closes: IncompleteBody.
    s3.put_object(Bucket=bucket, Key="kept", Body=b"old version")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "kept"}, ExpiresIn=60)
    target = url.split(str(server.port), 1)[1]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode() + b"y" * 10)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        reply = sock.recv(65536)
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"old version"
    assert not reply or b" 200 " not in reply.split(b"\r\n")[0]
    still_serving(s3)
