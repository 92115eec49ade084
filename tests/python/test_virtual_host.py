"""Virtual-hosted-style addressing (`BUCKET.s3.example.test`) with `domain` configured, next to path
style, with boto3 (SigV4 and SigV2), the AWS CLI, s3cmd and curl. The test names resolve to
127.0.0.1 through a `getaddrinfo` patch: in this process, and in the clients' Python processes
through a `sitecustomize` module on their PYTHONPATH."""

import json
import os
import socket
import subprocess
import uuid

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, BIN, REGION, SECRET_KEY, Server

DOMAIN = "s3.example.test"

RESOLVE = f"""
import socket
_getaddrinfo = socket.getaddrinfo
def _local(host, *args, **kwargs):
    if isinstance(host, str) and (host == {DOMAIN!r} or host.endswith({"." + DOMAIN!r})):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _local
"""


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    """Test names resolve to 127.0.0.1 here, and in child Python processes given `env`."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(RESOLVE)
    namespace = {}
    original = socket.getaddrinfo
    exec(RESOLVE, namespace)
    yield site
    socket.getaddrinfo = original


@pytest.fixture(scope="module")
def vhost(tmp_path_factory, resolver):
    srv = Server(tmp_path_factory.mktemp("vhost") / "data", config={"domain": DOMAIN}).start()
    yield srv
    assert srv.stop() == 0


def client(srv, style="virtual", signature_version="s3v4", host=DOMAIN):
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{srv.port}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1},
                      signature_version=signature_version),
    )


def new_bucket(s3):
    name = f"vh-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_objects_through_the_bucket_host_are_the_same_as_path_style(vhost, signature_version):
    s3 = client(vhost, signature_version=signature_version)
    path_style = vhost.client()
    bucket = new_bucket(s3)
    assert bucket in [b["Name"] for b in path_style.list_buckets()["Buckets"]]
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"virtual bytes", Metadata={"k": "v"})
    s3.put_object(Bucket=bucket, Key="c.txt", Body=b"second")
    assert path_style.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"virtual bytes"
    path_style.put_object(Bucket=bucket, Key="from-path", Body=b"path bytes")
    got = s3.get_object(Bucket=bucket, Key="from-path", Range="bytes=0-3")
    assert got["Body"].read() == b"path" and got["ContentRange"] == "bytes 0-3/10"
    assert s3.head_object(Bucket=bucket, Key="a/b.txt")["Metadata"] == {"k": "v"}
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["a/"]
    assert [o["Key"] for o in listed["Contents"]] == ["c.txt", "from-path"]
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "c.txt"})
    assert path_style.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"second"
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copy"}, {"Key": "c.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["c.txt", "copy"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="copy")
    assert code(e) == "NoSuchKey"
    # A bucket that does not exist, named by its host.
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=f"vh-missing-{uuid.uuid4().hex[:8]}")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_multipart_and_presigned_urls_through_the_bucket_host(vhost):
    s3 = client(vhost)
    bucket = new_bucket(s3)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    etags = [s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=n + 1, Body=body)["ETag"]
             for n, body in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(etags)]})
    assert vhost.client().get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(parts)

    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    assert put.startswith(f"http://{bucket}.{DOMAIN}:{vhost.port}/presigned?")
    assert requests.put(put, data=b"via presigned PUT", timeout=10).status_code == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    resp = requests.get(get, timeout=10)
    assert resp.status_code == 200 and resp.content == b"via presigned PUT"
    # The signature covers the host: the same URL under another bucket's host is refused.
    other = new_bucket(s3)
    forged = requests.get(get, headers={"Host": f"{other}.{DOMAIN}:{vhost.port}"}, timeout=10)
    assert forged.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in forged.text
    # SigV2 presigned URLs sign the bucket as part of the resource.
    v2 = client(vhost, signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    assert urlhost(v2) == f"{bucket}.{DOMAIN}:{vhost.port}"
    assert requests.get(v2, timeout=10).content == b"via presigned PUT"


def test_a_form_upload_to_the_bucket_host(vhost):
    s3 = client(vhost)
    bucket = new_bucket(s3)
    form = s3.generate_presigned_post(bucket, "forms/${filename}", ExpiresIn=300)
    assert form["url"] == f"http://{bucket}.{DOMAIN}:{vhost.port}/"
    resp = requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"form via host")}, timeout=30)
    assert resp.status_code == 204, resp.text
    assert s3.get_object(Bucket=bucket, Key="forms/a.txt")["Body"].read() == b"form via host"


def urlhost(url):
    return url.split("/")[2]


def test_latchkeys_own_routes_are_keys_under_a_bucket_host(vhost):
    s3 = client(vhost)
    bucket = new_bucket(s3)
    for key in ["-/shares", "-/health", "-/s/abc", "-/presigned/revocations", "-/findings"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert requests.get(f"http://{bucket}.{DOMAIN}:{vhost.port}/-/health", timeout=10).status_code == 403
    # The domain itself, an IP address and any other name are path style: the routes are there.
    for host in [DOMAIN, "127.0.0.1", "localhost"]:
        assert requests.get(f"http://{host}:{vhost.port}/-/health", timeout=10).status_code == 200
        listed = client(vhost, style="path", host=host).list_objects_v2(Bucket=bucket, Prefix="-/")
        assert listed["KeyCount"] == 5
    # An IAM/STS query (POST / with a form) under a bucket's host is not one.
    sts = boto3.client("sts", endpoint_url=f"http://{bucket}.{DOMAIN}:{vhost.port}", region_name=REGION,
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                       config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError):
        sts.get_caller_identity()
    assert boto3.client("sts", endpoint_url=f"http://{DOMAIN}:{vhost.port}", region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        ).get_caller_identity()["Arn"].endswith(":root")


def test_public_buckets_and_cors_are_judged_by_the_bucket_the_host_names(vhost):
    s3 = client(vhost)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="open.txt", Body=b"for everyone")
    url = f"http://{bucket}.{DOMAIN}:{vhost.port}/open.txt"
    assert requests.get(url, timeout=10).status_code == 403
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and resp.content == b"for everyone"

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"]}]})
    preflight = requests.options(url, headers={"Origin": "https://app.example",
                                               "Access-Control-Request-Method": "PUT"}, timeout=10)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    actual = requests.get(url, headers={"Origin": "https://app.example"}, timeout=10)
    assert actual.headers["Access-Control-Allow-Origin"] == "https://app.example"
    refused = requests.options(url, headers={"Origin": "https://evil.example",
                                             "Access-Control-Request-Method": "PUT"}, timeout=10)
    assert refused.status_code == 403


def test_curl_with_a_bucket_host_and_sigv4(vhost):
    s3 = client(vhost)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="curl.txt", Body=b"curl bytes")
    host = f"{bucket}.{DOMAIN}"
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--resolve", f"{host}:{vhost.port}:127.0.0.1",
         "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{ACCESS_KEY}:{SECRET_KEY}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         f"http://{host}:{vhost.port}/curl.txt"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"curl bytes"


def test_aws_cli_and_s3cmd_address_buckets_by_host(vhost, resolver, tmp_path):
    env = vhost.cli_env(tmp_path / "home")
    (tmp_path / "home" / ".aws" / "config").write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = virtual\n")
    env["PYTHONPATH"] = str(resolver)
    endpoint = f"http://{DOMAIN}:{vhost.port}"
    bucket = f"vh-{uuid.uuid4().hex[:12]}"

    def aws(*args):
        out = subprocess.run(["aws", "--endpoint-url", endpoint, "--debug", *args], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    aws("s3", "mb", f"s3://{bucket}")
    (tmp_path / "file.txt").write_bytes(b"cli bytes")
    copied = aws("s3", "cp", str(tmp_path / "file.txt"), f"s3://{bucket}/dir/file.txt")
    assert f"{bucket}.{DOMAIN}:{vhost.port}" in copied.stderr, "the CLI did not address the bucket by host"
    assert "dir/file.txt" in aws("s3", "ls", f"s3://{bucket}", "--recursive").stdout
    aws("s3", "cp", f"s3://{bucket}/dir/file.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == b"cli bytes"
    assert vhost.client().get_object(Bucket=bucket, Key="dir/file.txt")["Body"].read() == b"cli bytes"

    s3cmd = ["s3cmd", "--access_key", ACCESS_KEY, "--secret_key", SECRET_KEY, "--region", REGION,
             "--host", f"{DOMAIN}:{vhost.port}", "--host-bucket", f"%(bucket)s.{DOMAIN}:{vhost.port}",
             "--no-ssl", "--config", "/dev/null", "--debug"]
    out = subprocess.run([*s3cmd, "put", str(tmp_path / "file.txt"), f"s3://{bucket}/s3cmd.txt"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{bucket}.{DOMAIN}" in out.stderr, "s3cmd did not address the bucket by host"
    out = subprocess.run([*s3cmd, "ls", f"s3://{bucket}/"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "s3cmd.txt" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("domain, problem", [
    ("10.0.0.1", "an IP address cannot hold buckets"),
    ("s3.example.test:9000", "without a port"),
    ("example.test,s3.example.test", "overlap"),
])
def test_domains_that_cannot_hold_buckets_are_refused_at_start(tmp_path, domain, problem):
    out = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                          "--domain", domain], capture_output=True, text=True, timeout=60,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}})
    assert out.returncode != 0
    assert problem in out.stderr, out.stderr
