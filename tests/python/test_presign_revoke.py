"""Presigned URLs that AWS cannot revoke: `latchkey presign revoke URL` refuses one URL from then
on (only a hash of its signature is stored), `latchkey presign revoke --signed-by KEY --before
TIME` every URL that key signed before that time. Refusals are the usual 403, audited; every
replica sharing PostgreSQL refuses them; other URLs keep working."""

import datetime
import hashlib
import sqlite3
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, BIN, REGION, SECRET_KEY, audit_rows, psql
from test_bad_input import error_code
from test_counted_presign import presign
from test_identity import allow, new_user


def revoke(server, home, *args, env=None):
    return subprocess.run([BIN, "presign", "revoke", *args, "--endpoint-url", server.endpoint],
                          env=env or server.cli_env(home), capture_output=True, text=True, timeout=30)


def stored_revocations(server):
    """The rows of presigned_revocations: (signature hash hex, access key id)."""
    schema = server.schema()
    if schema:
        out = psql(f"SELECT encode(signature_hash, 'hex'), access_key_id FROM {schema}.presigned_revocations")
        assert out.returncode == 0, out.stderr
        return [tuple(c or None for c in line.split("|")) for line in out.stdout.split("\n") if line]
    db = sqlite3.connect(server.data_dir / "meta.db", timeout=10)
    try:
        return [(h.hex() if h else None, k) for h, k in
                db.execute("SELECT signature_hash, access_key_id FROM presigned_revocations")]
    finally:
        db.close()


def test_a_revoked_url_is_refused_and_only_its_hash_is_kept(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"name,salary\n")
    home = tmp_path / "home"
    url = presign(server, home, f"s3://{bucket}/payroll.csv")
    other = presign(server, home, f"s3://{bucket}/payroll.csv", "--expires-in", "600")
    v2 = server.client(signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "payroll.csv"})
    assert requests.get(url, timeout=10).status_code == 200

    out = revoke(server, home, url)
    assert out.returncode == 0, out.stderr
    refused = requests.get(url, timeout=10)
    assert (refused.status_code, error_code(refused)) == (403, "AccessDenied")
    assert "revoked" not in refused.text, "the reason is not told"
    assert requests.get(other, timeout=10).status_code == 200, "another URL of the same object"

    # SigV2 URLs are revoked the same way.
    assert requests.get(v2, timeout=10).status_code == 200
    assert revoke(server, home, v2).returncode == 0
    assert requests.get(v2, timeout=10).status_code == 403

    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    rows = stored_revocations(server)
    stored = len(rows)
    kept = hashlib.sha256(f"{ACCESS_KEY}\n{signature}".encode()).hexdigest()
    assert (kept, None) in rows
    assert not any(signature in str(row) for row in rows), "the signature itself is not stored"
    reasons = [row["reason"] for row in audit_rows(server, "presigned.revoked")]
    assert len(reasons) >= 2 and all(signature not in r for r in reasons)
    assert kept[:16] in reasons[-2]
    denied = [row["reason"] for row in audit_rows(server, "presigned.denied")]
    assert any("revoked" in r for r in denied)

    # A URL with its signature's name percent-encoded is the same URL to the signature check.
    encoded = url.replace("X-Amz-Signature=", "X-Amz-Signatur%65=")
    assert requests.get(encoded, timeout=10).status_code == 403

    # Bad input: a clear error, nothing stored.
    for args, message in (((f"{server.endpoint}/{bucket}/payroll.csv",), "not a presigned URL"),
                          (("--signed-by", "AKIAX", "--before", "2999-01-01T00:00:00Z"), "future"),
                          (("--signed-by", "AKIAX", "--before", "last week"), "RFC 3339")):
        out = revoke(server, home, *args)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)
    assert len(stored_revocations(server)) == stored, "nothing stored"


def test_revoking_what_a_key_signed_before_a_time(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    name, key_id, secret = new_user(server, allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    user = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,
                        region_name=REGION, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    old = user.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    root_url = presign(server, tmp_path / "home", f"s3://{bucket}/k")
    assert requests.get(old, timeout=10).status_code == 200
    time.sleep(1.1)  # X-Amz-Date has whole seconds
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)
    out = revoke(server, tmp_path / "home", "--signed-by", key_id, "--before", before)
    assert out.returncode == 0, out.stderr
    assert requests.get(old, timeout=10).status_code == 403, "signed before"
    fresh = user.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert requests.get(fresh, timeout=10).status_code == 200, "signed after"
    assert user.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v", "header-signed requests are not URLs"
    assert requests.get(root_url, timeout=10).status_code == 200, "another key's URL"
    assert (None, key_id) in stored_revocations(server)


def test_who_may_revoke(server, s3, bucket, tmp_path):
    """A user revokes URLs signed with its own keys; another's only with
    latchkey:RevokePresignedUrl."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    read = allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*")
    _, alice_key, alice_secret = new_user(server, read)
    _, bob_key, bob_secret = new_user(server, read)
    admin_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "latchkey:RevokePresignedUrl", "Resource": "*"}]}
    _, admin_key, admin_secret = new_user(server, admin_policy)

    def env_for(key, secret, home):
        env = server.cli_env(home)
        (home / ".aws" / "credentials").write_text(
            f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
        return env

    def url_of(key, secret):
        return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                            region_name=REGION, config=Config(signature_version="s3v4",
                                                              s3={"addressing_style": "path"})
                            ).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})

    alice_url, bob_url = url_of(alice_key, alice_secret), url_of(bob_key, bob_secret)
    alice = env_for(alice_key, alice_secret, tmp_path / "alice")
    out = revoke(server, None, bob_url, env=alice)
    assert out.returncode != 0 and "403" in out.stderr, out.stderr
    assert requests.get(bob_url, timeout=10).status_code == 200
    assert revoke(server, None, "--signed-by", bob_key, env=alice).returncode != 0
    assert revoke(server, None, alice_url, env=alice).returncode == 0, "its own"
    assert requests.get(alice_url, timeout=10).status_code == 403
    # Review finding: naming one's own key beside another's signature revokes nothing of theirs.
    bob = env_for(bob_key, bob_secret, tmp_path / "bob")
    time.sleep(1.1)  # another X-Amz-Date: another URL than the one alice revoked
    alice_again = url_of(alice_key, alice_secret)
    assert requests.get(alice_again, timeout=10).status_code == 200
    swapped = alice_again.replace(alice_key, bob_key)
    assert revoke(server, None, swapped, env=bob).returncode == 0
    assert requests.get(alice_again, timeout=10).status_code == 200, "alice's URL still works"
    admin = env_for(admin_key, admin_secret, tmp_path / "admin")
    assert revoke(server, None, bob_url, env=admin).returncode == 0
    assert requests.get(bob_url, timeout=10).status_code == 403


def test_a_revoked_url_is_refused_by_the_signed_apis_too(server, tmp_path):
    """Review finding: a presigned URL of Latchkey's own signed APIs is revoked like any other."""
    request = AWSRequest(method="GET", url=f"{server.endpoint}/-/audit/digests")
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=600).add_auth(request)
    url = request.url
    assert requests.get(url, timeout=10).status_code == 200
    assert revoke(server, tmp_path / "home", url).returncode == 0
    assert requests.get(url, timeout=10).status_code == 403


def test_a_revoked_url_is_refused_on_both_replicas(replicas, tmp_path):
    first, second = replicas
    s3 = first.client()
    s3.create_bucket(Bucket="revoked")
    s3.put_object(Bucket="revoked", Key="k", Body=b"shared")
    url = presign(first, tmp_path / "home", "s3://revoked/k")
    path = url.split(first.endpoint, 1)[1]
    # The signature covers the Host header: both replicas are asked as the first's address.
    host = {"Host": first.endpoint.split("://", 1)[1]}

    def status(replica):
        return requests.get(replica.endpoint + path, headers=host, timeout=10).status_code

    assert [status(s) for s in replicas] == [200, 200]
    assert revoke(first, tmp_path / "home", url).returncode == 0
    assert status(first) == 403, "at once where it was revoked"
    # The other replica hears of it through PostgreSQL NOTIFY, within moments.
    deadline = time.monotonic() + 5
    while status(second) != 403:
        assert time.monotonic() < deadline, "the other replica still serves a revoked URL"
        time.sleep(0.05)
    # And a replica started afterwards loads it.
    second.stop()
    second.start()
    assert status(second) == 403
    refused = requests.get(second.endpoint + path, headers=host, timeout=10)
    assert error_code(refused) == "AccessDenied", "refused as revoked, not as mis-signed"
