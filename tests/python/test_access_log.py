"""The access log: one JSON line per request, once its response is done, saying who (principal,
access key id, how it authenticated, from where), what (operation, bucket, key, status, error
code) and how much (bytes in and out, duration); to stderr, to a file, or nowhere. And after a run
with every kind of credential, none of them is anywhere it could leak: log, access log, audit
store, data dir."""

import json
import time
import urllib.parse

import boto3
import requests
from botocore.config import Config

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server
from test_identity import client, new_user
from test_shares import mint


def lines(path, request_id=None):
    """The access-log entries written so far (each line must be JSON)."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in entries if request_id is None or e["request_id"] == request_id]


def entry(path, request_id, timeout=5):
    """The line of one request: written once its response is done, by a writer thread."""
    deadline = time.monotonic() + timeout
    while not (found := lines(path, request_id)):
        assert time.monotonic() < deadline, f"no access-log line for {request_id}"
        time.sleep(0.05)
    assert len(found) == 1, found
    return found[0]


def test_each_request_leaves_one_line_with_who_what_and_how_much(tmp_path):
    log = tmp_path / "access.jsonl"
    server = Server(tmp_path / "data", config={"access_log": str(log)}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="logged")
        put = s3.put_object(Bucket="logged", Key="dir/report.csv", Body=b"x" * 1000)
        line = entry(log, put["ResponseMetadata"]["RequestId"])
        assert {k: line[k] for k in ("principal", "access_key_id", "auth", "source_ip", "method", "bucket", "key",
                                     "operation", "status", "error_code", "bytes_in")} == {
            "principal": "arn:aws:iam::000000000000:root", "access_key_id": ACCESS_KEY, "auth": "header",
            "source_ip": "127.0.0.1", "method": "PUT", "bucket": "logged", "key": "dir/report.csv",
            "operation": "PutObject", "status": 200, "error_code": None, "bytes_in": 1000}
        assert line["listener"] == server.endpoint.split("://")[1] and line["duration_ms"] > 0
        assert line["user_agent"].startswith("Boto3/")
        assert time.time() - time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")) < 3600 * 24

        url = s3.generate_presigned_url("get_object", Params={"Bucket": "logged", "Key": "dir/report.csv"})
        got = requests.get(url, timeout=10)
        line = entry(log, got.headers["x-amz-request-id"])
        assert (line["auth"], line["operation"], line["bytes_out"], line["path"]) == \
            ("presigned", "GetObject", 1000, "/logged/dir/report.csv"), "no query string: it carries the signature"

        refused = requests.get(server.endpoint + "/logged/dir/report.csv", timeout=10)
        line = entry(log, refused.headers["x-amz-request-id"])
        assert (line["auth"], line["principal"], line["status"], line["error_code"]) == \
            ("anonymous", None, 403, "AccessDenied")

        link = mint(server, "logged", "dir/report.csv")
        shared = requests.get(link["api_url"], timeout=10)
        line = entry(log, shared.headers["x-amz-request-id"])
        assert (line["auth"], line["operation"], line["path"], line["bytes_out"]) == \
            ("share", "AccessObject", "/-/access-object", 1000)

        iam = client(server, "iam")
        created = iam.create_user(UserName="logged-user")
        line = entry(log, created["ResponseMetadata"]["RequestId"])
        assert (line["operation"], line["principal"], line["status"]) == \
            ("CreateUser", "arn:aws:iam::000000000000:root", 200)

        forged = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key="wrong", region_name=REGION,
                              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        try:
            forged.list_buckets()
        except forged.exceptions.ClientError as e:
            line = entry(log, e.response["ResponseMetadata"]["RequestId"])
        assert (line["access_key_id"], line["principal"], line["error_code"]) == \
            (ACCESS_KEY, None, "SignatureDoesNotMatch"), "a failed authentication names the key, not a principal"
        # What a client writes where the key id goes is logged only when it has a key id's shape.
        pasted = requests.get(f"{server.endpoint}/logged?X-Amz-Credential={SECRET_KEY}%2Fx&X-Amz-Signature=ab",
                              timeout=10)
        malformed = requests.get(f"{server.endpoint}/logged", timeout=10, headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY} SignedHeaders=host, Signature=deadbeef"})
        for resp in (pasted, malformed):
            line = entry(log, resp.headers["x-amz-request-id"])
            assert line["access_key_id"] is None, line
        assert SECRET_KEY not in log.read_text() and "deadbeef" not in log.read_text()
        assert "request_id" not in server.stderr_text(), "the access log went to its file, not stderr"
    finally:
        server.stop()


def test_the_access_log_can_be_off(tmp_path):
    server = Server(tmp_path / "data", config={"access_log": "off"}).start()
    try:
        assert requests.get(server.endpoint + "/-/health", timeout=10).status_code == 200
    finally:
        server.stop()
    assert "request_id" not in server.stderr_text()


def test_no_credential_reaches_any_log_the_audit_store_or_the_data_dir(tmp_path):
    log = tmp_path / "access.jsonl"
    server = Server(tmp_path / "data", config={"access_log": str(log)}).start()
    secrets = {SECRET_KEY}
    try:
        def collect(request, **_):
            auth = request.headers.get("Authorization", b"")
            auth = auth.decode() if isinstance(auth, bytes) else auth
            if "Signature=" in auth:
                secrets.add(auth.rsplit("Signature=", 1)[1])
        s3 = server.client()
        s3.meta.events.register("before-send", collect)
        s3.create_bucket(Bucket="secrets")
        s3.put_object(Bucket="secrets", Key="k", Body=b"payload")

        # Presigned URLs, SigV4 and SigV2: their signatures.
        v4 = s3.generate_presigned_url("get_object", Params={"Bucket": "secrets", "Key": "k"})
        v2_client = server.client(signature_version="s3")
        v2 = v2_client.generate_presigned_url("get_object", Params={"Bucket": "secrets", "Key": "k"})
        for url in (v4, v2):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            secrets.add(query.get("X-Amz-Signature", query.get("Signature"))[0])
            assert requests.get(url, timeout=10).content == b"payload"
            assert requests.get(url.replace("Signature=", "Signature=0"), timeout=10).status_code == 403

        # An IAM user's secret key, and an STS session's secret and token.
        _, key_id, secret = new_user(server)
        secrets.add(secret)
        user_s3 = client(server, "s3", key_id, secret)
        user_s3.meta.events.register("before-send", collect)
        try:
            user_s3.list_objects_v2(Bucket="secrets")
        except user_s3.exceptions.ClientError:
            pass
        session = client(server, "sts", key_id, secret).get_session_token()["Credentials"]
        secrets.update({session["SecretAccessKey"], session["SessionToken"]})
        session_s3 = client(server, "s3", session["AccessKeyId"], session["SecretAccessKey"],
                            session["SessionToken"])
        session_s3.meta.events.register("before-send", collect)
        try:
            session_s3.list_buckets()
        except session_s3.exceptions.ClientError:
            pass

        # Share tokens, used, misused and revoked.
        link = mint(server, "secrets", "k", max_uses=1)
        secrets.add(link["token"])
        assert requests.get(link["api_url"], timeout=10).content == b"payload"
        assert requests.get(link["api_url"], timeout=10).status_code in (403, 404, 410)
        assert requests.get(link["url"], timeout=10).status_code in (403, 404, 410)
    finally:
        server.stop()
    assert len(secrets) >= 8
    haystacks = {"stderr": server.stderr_text().encode(), "access log": log.read_bytes()}
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_bytes()
    assert any(b"secrets" in h for h in haystacks.values())
    for secret in secrets:
        for name, haystack in haystacks.items():
            assert secret.encode() not in haystack, f"a credential ({secret[:6]}...) is in {name}"
