"""Holes found by driving Latchkey as a new user or an attacker would (issue #9): tokens in the
access log, links built from the Host header, encryption requests silently ignored, unlimited
SigV2 URLs, unchecked signing regions, errors the AWS CLI prints as "Unknown"."""

import datetime
import email.utils
import http.client
import subprocess
from unittest import mock
from xml.etree import ElementTree

import boto3
import pytest
import requests
from botocore.auth import HmacV1Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server
from test_bad_input import signed
from test_shares import mint


def raw_get(server, path, headers=None):
    """A request with its path exactly as given (no client normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def error_of(resp):
    """Code, Message and RequestId of an S3 error body (None where absent)."""
    error = ElementTree.fromstring(resp.content)
    assert error.tag == "Error", resp.text
    return error.findtext("Code"), error.findtext("Message"), error.findtext("RequestId")


def client(server, **config):
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=config.pop("region", REGION),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config))


def test_share_tokens_never_reach_the_access_log(tmp_path):
    server = Server(tmp_path / "data").start()
    s3 = server.client()
    s3.create_bucket(Bucket="logs")
    s3.put_object(Bucket="logs", Key="k", Body=b"secret report")
    link = mint(server, "logs", "k")
    token = link["token"]
    spellings = ["/-/s/T", "//-/s/T", "/-//s/T", "/-/./s/T", "/-/%73/T", "/%2D/s/T", "/%2d/s/T", "/-/s/./T",
                 "/x/../-/s/T", "/-/%2573/T", "/%2F-%2Fs%2FT", "/T", "/-/s/T/", "/-/unknown/T",
                 "/logs/T", "/logs/-/s/T", "/nobucket/T"]
    # Every spelling, then each with every character percent-encoded.
    encoded = ["".join(c if c == "/" else f"%{ord(c):02X}" for c in s) for s in spellings]
    for spelling in spellings + encoded:
        raw_get(server, spelling.replace("T", token))
    assert requests.get(link["api_url"], timeout=10).content == b"secret report", "the link stayed valid until now"
    assert server.stop() == 0
    log = server.stderr_text()
    assert log.count('"request_id"') >= len(spellings) * 2, "one access-log line per request"
    assert token not in log
    assert "/-/s/<token>" in log


def test_links_and_redirects_never_come_from_the_host_header(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="r.txt", Body=b"redirected bytes")
    data = b'{"bucket": "%s", "key": "r.txt", "redirect": true}' % bucket.encode()
    request = AWSRequest(method="POST", url=f"{server.endpoint}/-/shares", data=data,
                         headers={"Host": "evil.example", "Content-Type": "application/json",
                                  "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    resp = requests.post(request.url, data=data, headers=dict(request.headers), timeout=10)
    assert resp.status_code == 201, resp.text
    link = resp.json()
    assert link["url"].startswith(f"{server.endpoint}/-/s/") and "evil" not in resp.text
    assert link["api_url"].startswith(f"{server.endpoint}/-/access-object?nonce=")

    redirect = requests.get(link["api_url"], headers={"Host": "evil.example"}, allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(f"{server.endpoint}/{bucket}/r.txt?"), location
    assert requests.get(location, timeout=10).content == b"redirected bytes"


def test_public_url_is_the_base_of_every_link(tmp_path):
    server = Server(tmp_path / "data", config={"public_url": "https://files.example.com/"}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="pub")
        s3.put_object(Bucket="pub", Key="k", Body=b"x")
        link = mint(server, "pub", "k", redirect=True)
        assert link["url"] == f"https://files.example.com/-/s/{link['token']}"
        assert link["api_url"] == f"https://files.example.com/-/access-object?nonce={link['token']}"
        redirect = requests.get(f"{server.endpoint}/-/access-object?nonce={link['token']}",
                                allow_redirects=False, timeout=10)
        # The exact version the link was made for, signed.
        assert redirect.headers["Location"].startswith("https://files.example.com/pub/k?versionId=")
        assert "&X-Amz-Signature=" in redirect.headers["Location"]
    finally:
        server.stop()
    bad = Server(tmp_path / "bad", config={"public_url": "files.example.com"})
    with pytest.raises(RuntimeError, match="exited early"):
        bad.start()
    assert "expected http(s)://HOST[:PORT]" in bad.stderr_text()


@pytest.mark.parametrize("extra", [
    {"ServerSideEncryption": "AES256"},
    {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/reports"},
    {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
])
def test_encryption_requests_are_refused_not_ignored(s3, bucket, extra):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="enc", Body=b"card numbers", **extra)
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "x-amz-server-side-encryption" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="enc")
    assert e.value.response["Error"]["Code"] == "404", "nothing was stored"
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="enc", **extra)
    assert e.value.response["Error"]["Code"] == "NotImplemented"


def test_encryption_through_the_cli_and_bucket_defaults_is_refused(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "plain"},
                       ServerSideEncryption="AES256")
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    source = tmp_path / "f.txt"
    source.write_text("hello")
    out = subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3", "cp", "--sse", "AES256", str(source),
                          f"s3://{bucket}/cli"], env=server.cli_env(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "NotImplemented" in out.stderr and "server-side encryption" in out.stderr, out.stderr
    assert "Unknown" not in out.stderr


def test_sigv2_urls_obey_the_presigned_lifetime_cap(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    v2 = client(server, signature_version="s3")
    week = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604_800)
    assert requests.get(week, timeout=10).content == b"v2"
    decade = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"},
                                       ExpiresIn=10 * 365 * 86_400)
    resp = requests.get(decade, timeout=10)
    assert resp.status_code == 400
    assert error_of(resp)[:2] == ("AuthorizationQueryParametersError",
                                  "Expires must be at most 604800 seconds in the future")


def test_presigned_cap_is_configurable_and_sigv2_can_be_refused(tmp_path):
    server = Server(tmp_path / "data", config={"max_presigned_expiry_secs": 600, "sigv2": False}).start()
    try:
        s3 = client(server, signature_version="s3v4")
        s3.create_bucket(Bucket="capped")
        s3.put_object(Bucket="capped", Key="k", Body=b"x")
        params = {"Bucket": "capped", "Key": "k"}
        assert requests.get(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600), timeout=10).ok
        long = requests.get(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=601), timeout=10)
        assert long.status_code == 400 and error_of(long)[0] == "AuthorizationQueryParametersError"
        v2 = client(server, signature_version="s3")
        url = v2.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
        refused = requests.get(url, timeout=10)
        assert refused.status_code == 400 and error_of(refused)[0] == "InvalidRequest"
        with pytest.raises(ClientError) as e:
            v2.get_object(**params)
        assert e.value.response["Error"]["Code"] == "InvalidRequest"
    finally:
        server.stop()


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_signatures_for_another_region_are_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    # On the wire (botocore, told the region in the answer as AWS tells it, would sign again).
    request = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/k",
                         headers={"x-amz-content-sha256": EMPTY_SHA256})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "eu-west-1").add_auth(request)
    refused = requests.get(request.url, headers=dict(request.headers), timeout=10)
    code, message, _ = error_of(refused)
    assert (refused.status_code, code) == (400, "AuthorizationHeaderMalformed"), refused.text
    assert "the region 'eu-west-1' is wrong; expecting 'us-east-1'" in message
    assert "<Region>us-east-1</Region>" in refused.text, "the region to sign for, as AWS names it"
    elsewhere = client(server, region="eu-west-1")
    assert elsewhere.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x", "botocore signs again for it"
    v4 = client(server, region="eu-west-1", signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 400
    code, message, _ = error_of(resp)
    assert code == "AuthorizationQueryParametersError" and "expecting 'us-east-1'" in message


def sigv2_request(server, path, date):
    """A SigV2 header-signed GET whose signed date is `date` (as a replay would carry)."""
    request = AWSRequest(method="GET", url=f"{server.endpoint}{path}", headers={})
    with mock.patch.object(HmacV1Auth, "_get_date", return_value=email.utils.format_datetime(date, usegmt=True)):
        HmacV1Auth(Credentials(ACCESS_KEY, SECRET_KEY)).add_auth(request)
    return requests.get(request.url, headers=dict(request.headers), timeout=10)


def test_captured_sigv2_requests_stop_working_after_fifteen_minutes(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"fresh")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert sigv2_request(server, f"/{bucket}/k", now).content == b"fresh"
    assert sigv2_request(server, f"/{bucket}/k", now - datetime.timedelta(minutes=5)).content == b"fresh"
    stale = sigv2_request(server, f"/{bucket}/k", now - datetime.timedelta(minutes=16))
    assert stale.status_code == 403 and error_of(stale)[0] == "RequestTimeTooSkewed"
    ahead = sigv2_request(server, f"/{bucket}/k", now + datetime.timedelta(minutes=16))
    assert ahead.status_code == 403 and error_of(ahead)[0] == "RequestTimeTooSkewed"


def test_every_s3_error_has_a_message_and_the_request_id(server, s3, bucket):
    wrong = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key="wrong", region_name=REGION,
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    url = wrong.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    cases = {
        "SignatureDoesNotMatch": requests.get(url, timeout=10),
        "KeyTooLongError": signed(server, "PUT", f"/{bucket}/{'k' * 1100}", b"x"),
        "MalformedXML": signed(server, "POST", f"/{bucket}?delete", b"<Delete><Object>"),
        "InvalidBucketName": signed(server, "PUT", "/Not_A_Bucket"),
        "NoSuchKey": signed(server, "GET", f"/{bucket}/missing"),
    }
    for expected, resp in cases.items():
        code, message, request_id = error_of(resp)
        assert code == expected, resp.text
        assert message and message != "Unknown", resp.text
        assert request_id == resp.headers["x-amz-request-id"], resp.text


def test_the_cli_prints_the_message_of_errors_s3s_raises(server, bucket, tmp_path):
    out = subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3api", "put-object", "--bucket", bucket,
                          "--key", "k" * 1100], env=server.cli_env(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "(KeyTooLongError)" in out.stderr and "Your key is too long." in out.stderr, out.stderr


def test_too_many_header_fields_get_an_s3_error(server, s3, bucket):
    headers = {f"x-filler-{i}": "a" for i in range(150)}
    resp = requests.get(f"{server.endpoint}/{bucket}/k", headers=headers, timeout=10)
    assert resp.status_code == 400
    code, message, request_id = error_of(resp)
    assert code == "RequestHeaderSectionTooLarge" and message and request_id == resp.headers["x-amz-request-id"]
    assert "Buckets" in s3.list_buckets()


@pytest.mark.parametrize("method,path,body", [
    ("PUT", "/{bucket}/" + "k" * 2000, b"x"),
    ("PUT", "/Not_A_Bucket", b""),
    ("POST", "/{bucket}?delete", b"<Delete><Object>"),
    ("PUT", "/{bucket}/k?tagging", b"not xml"),
])
def test_anonymous_requests_are_refused_before_their_key_or_body_is_judged(server, bucket, method, path, body):
    resp = requests.request(method, server.endpoint + path.format(bucket=bucket), data=body, timeout=10)
    assert resp.status_code == 403, resp.text
    assert error_of(resp)[:2] == ("AccessDenied", "Access Denied")


def test_sigv2_signatures_are_checked_before_s3s_compares_them(server, s3, bucket):
    """SigV2 requests with content types and amz headers verify through the constant-time check
    (it builds the same string to sign as s3s); forged ones get the S3 error."""
    v2 = client(server, signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2", Body=b"signed", ContentType="text/plain", Metadata={"owner": "ops"})
    assert s3.get_object(Bucket=bucket, Key="v2")["Metadata"] == {"owner": "ops"}
    forged = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key="forged", region_name=REGION,
                          config=Config(signature_version="s3", s3={"addressing_style": "path"},
                                        retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        forged.get_object(Bucket=bucket, Key="v2")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    url = forged.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2"}, ExpiresIn=60)
    assert error_of(requests.get(url, timeout=10))[0] == "SignatureDoesNotMatch"


def test_a_head_request_does_not_spend_a_one_time_link(server, s3, bucket):
    """Link checkers and download managers send HEAD first; it tells the size and uses nothing."""
    s3.put_object(Bucket=bucket, Key="h.txt", Body=b"twelve bytes", ContentType="text/plain")
    link = mint(server, bucket, "h.txt")
    for _ in range(3):
        head = requests.head(link["api_url"], timeout=10)
        assert head.status_code == 200 and head.headers["Content-Length"] == "12"
    assert requests.get(link["api_url"], timeout=10).content == b"twelve bytes"
    assert requests.head(link["api_url"], timeout=10).status_code == 403
    assert requests.get(link["api_url"], timeout=10).status_code == 403
