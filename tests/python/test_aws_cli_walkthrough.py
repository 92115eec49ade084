"""The AWS blog walkthrough (`aws s3 mb/cp/ls/presign`) against Latchkey, with the pinned AWS CLI."""

import hashlib
import os
import subprocess
import time
import uuid
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import ACCESS_KEY, BIN, REGION, SECRET_KEY


def aws(server, env, *args):
    out = subprocess.run(
        ["aws", "--endpoint-url", server.endpoint, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"aws {' '.join(args)} failed: {out.stderr}"
    return out.stdout


def error_code(resp):
    return resp.text.split("<Code>")[1].split("</Code>")[0]


def lifetime(url):
    """Seconds a presigned URL is valid for: SigV4 says so, SigV2 gives an absolute epoch."""
    query = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in query:
        return int(query["X-Amz-Expires"][0])
    return round(int(query["Expires"][0]) - time.time())


@pytest.mark.parametrize("signature", ["cli-default", "s3v4"])
def test_walkthrough(server, tmp_path, signature):
    env = server.cli_env(tmp_path / "home")
    if signature == "s3v4":
        with open(tmp_path / "home" / ".aws" / "config", "a") as config:
            config.write("s3 =\n    signature_version = s3v4\n")
    bucket = f"walk-{uuid.uuid4().hex[:8]}"
    big = tmp_path / "video.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))
    small = tmp_path / "report.txt"
    small.write_text("quarterly numbers\n")

    assert f"make_bucket: {bucket}" in aws(server, env, "s3", "mb", f"s3://{bucket}")
    aws(server, env, "s3", "cp", str(big), f"s3://{bucket}/videos/video.bin")
    aws(server, env, "s3", "cp", str(small), f"s3://{bucket}/report.txt")

    listing = aws(server, env, "s3", "ls", f"s3://{bucket}")
    assert "PRE videos/" in listing and "report.txt" in listing
    recursive = aws(server, env, "s3", "ls", "--recursive", f"s3://{bucket}")
    assert f"{20 * 1024 * 1024} videos/video.bin" in recursive

    # The 20 MiB upload went multipart: S3's ETag for that is md5-of-md5s with a part count.
    head = server.client().head_object(Bucket=bucket, Key="videos/video.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]

    default_url = aws(server, env, "s3", "presign", f"s3://{bucket}/videos/video.bin").strip()
    assert ("X-Amz-Signature=" in default_url) == (signature == "s3v4")
    assert abs(lifetime(default_url) - 3600) <= 2
    got = requests.get(default_url, timeout=60)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(big.read_bytes()).digest()

    unsigned = requests.get(f"{server.endpoint}/{bucket}/videos/video.bin", timeout=10)
    assert unsigned.status_code == 403 and error_code(unsigned) == "AccessDenied"
    assert unsigned.headers["x-amz-request-id"]

    # Long enough to survive the CLI's own exit on a busy machine (SigV2 expiry has whole seconds).
    short_url = aws(server, env, "s3", "presign", f"s3://{bucket}/report.txt", "--expires-in", "5").strip()
    assert lifetime(short_url) <= 5
    assert requests.get(short_url, timeout=10).text == "quarterly numbers\n"
    time.sleep(max(0, lifetime(short_url)) + 1.5)
    expired = requests.get(short_url, timeout=10)
    assert expired.status_code == 403
    assert error_code(expired) == "AccessDenied"
    assert "<Message>Request has expired</Message>" in expired.text


def test_latchkey_presign_signs_urls_that_work_and_expire(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="doc name.txt", Body=b"signed by latchkey")
    env = server.cli_env(tmp_path / "home")

    def presign(*args):
        out = subprocess.run(
            [BIN, "presign", f"s3://{bucket}/doc name.txt", "--endpoint-url", server.endpoint, *args],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    url = presign()
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["3600"]
    assert requests.get(url, timeout=10).content == b"signed by latchkey"

    put_url = presign("--method", "PUT", "--expires-in", "60")
    assert requests.put(put_url, data=b"replaced through a presigned PUT", timeout=10).status_code == 200
    assert s3.get_object(Bucket=bucket, Key="doc name.txt")["Body"].read() == b"replaced through a presigned PUT"

    short = presign("--expires-in", "1")
    time.sleep(2.5)
    expired = requests.get(short, timeout=10)
    assert expired.status_code == 403 and "Request has expired" in expired.text


def test_latchkey_presign_finds_named_profiles_and_explains_mistakes(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="k", Body=b"via profile")
    home = tmp_path / "home"
    env = server.cli_env(home)
    (home / ".aws" / "credentials").write_text(
        f"[other]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    (home / ".aws" / "config").write_text(f"[profile other]\nregion = {REGION}\nendpoint_url = {server.endpoint}\n")
    out = subprocess.run([BIN, "presign", f"s3://{bucket}/k", "--profile", "other"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert requests.get(out.stdout.strip(), timeout=10).content == b"via profile"

    bad = subprocess.run([BIN, "presign", "reports/q3.pdf"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "expected s3://BUCKET/KEY" in bad.stderr
    too_long = subprocess.run([BIN, "presign", f"s3://{bucket}/k", "--profile", "other", "--expires-in", "604801"],
                              env=env, capture_output=True, text=True, timeout=30)
    assert too_long.returncode != 0 and "604800" in too_long.stderr


def test_presigned_urls_beyond_seven_days_are_refused(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    # botocore refuses to sign more than a week too, so sign through its lower-level signer.
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/k")
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=604801).add_auth(request)
    resp = requests.get(request.url, timeout=10)
    assert resp.status_code == 400
    assert error_code(resp) == "AuthorizationQueryParametersError"


def test_sigv2_presigned_urls(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="legacy.txt", Body=b"sigv2 still works")
    v2 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, region_name=REGION,
                      config=Config(signature_version="s3", s3={"addressing_style": "path"}))
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "legacy.txt"}, ExpiresIn=60)
    assert "AWSAccessKeyId=" in url and "Signature=" in url
    assert requests.get(url, timeout=10).content == b"sigv2 still works"

    expired = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "legacy.txt"}, ExpiresIn=1)
    time.sleep(2.5)
    resp = requests.get(expired, timeout=10)
    assert resp.status_code == 403 and "Request has expired" in resp.text

    tampered = url.replace("legacy.txt", "legacy.txt2")
    assert requests.get(tampered, timeout=10).status_code == 403
