"""Identity and policy: IAM users, keys and inline policies through the unmodified AWS CLI and
boto3, virtual MFA with `aws sts get-session-token`, policies enforced on every S3 request and
presigned URL, share links scoped to their creator, and changes reaching another replica."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, audit_rows, psql
from test_shares import api


def totp(seed_base32, at):
    """RFC 6238 (SHA-1, 6 digits, 30 s), computed here, independently of the server."""
    key = base64.b32decode(seed_base32 + "=" * (-len(seed_base32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 15
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def enable_virtual_device(server, user, at=None):
    """A virtual MFA device enabled for `user` with the codes of the step before `at` and of `at`'s
    (default: now): (serial, Base32 seed, the time used). The code of the step after `at` is the
    first one it accepts; with `at` a minute ago, the codes of the last, the current and the next
    step are all still unspent (the server accepts one step either side of now)."""
    iam = client(server, "iam")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{user}-{uuid.uuid4().hex[:6]}")["VirtualMFADevice"]
    seed = device["Base32StringSeed"].decode()
    now = time.time() if at is None else at
    iam.enable_mfa_device(UserName=user, SerialNumber=device["SerialNumber"],
                          AuthenticationCode1=totp(seed, now - 30), AuthenticationCode2=totp(seed, now))
    return device["SerialNumber"], seed, now


def client(server, service, key_id=ACCESS_KEY, secret=SECRET_KEY, token=None):
    return boto3.client(service, endpoint_url=server.endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, aws_session_token=token, region_name=REGION,
                        verify=getattr(server, "ca", None),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def error_code(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def new_user(server, policy=None, tags=(), name=None):
    """A user (named `name`, or a fresh name) with one access key (and an inline policy):
    (name, key id, secret)."""
    iam = client(server, "iam")
    name = name or f"u-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in tags])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def allow(actions, resources, **extra):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources,
                                                    **extra}]}


def set_session_expiry(server, access_key_id, expires_at):
    """Moves a stored session's expiry (the server reads a session from the store on first use)."""
    ms = int(expires_at * 1000)
    schema = server.schema()
    if schema:
        out = psql(f"UPDATE {schema}.sts_sessions SET expires_ms = {ms} WHERE access_key_id = '{access_key_id}'")
        assert out.returncode == 0 and out.stdout.strip() == "UPDATE 1", (out.stdout, out.stderr)
        return
    db = sqlite3.connect(server.data_dir / "meta.db", timeout=10)
    try:
        with db:
            assert db.execute("UPDATE sts_sessions SET expires_ms = ? WHERE access_key_id = ?",
                              (ms, access_key_id)).rowcount == 1
    finally:
        db.close()


def aws(server, home, profile, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LATCHKEY_"))}
    env["HOME"] = str(home)
    out = subprocess.run(["aws", "--endpoint-url", server.endpoint, "--profile", profile, "--output", "json", *args],
                         capture_output=True, text=True, env=env, timeout=60)
    return out


def write_profiles(home, profiles):
    credentials = "".join(
        f"[{name}]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n"
        + (f"aws_session_token = {t}\n" if t else "")
        for name, (k, s, t) in profiles.items()
    )
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text("".join(f"[profile {n}]\nregion = {REGION}\n" for n in profiles)
                                         + f"[default]\nregion = {REGION}\n")


def test_the_mfa_walkthrough_with_the_aws_cli(server, bucket, s3, tmp_path):
    """The seed's walkthrough: reads with long-term keys, deletes only with an MFA session."""
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"q3")
    s3.put_object(Bucket=bucket, Key="later.csv", Body=b"q4")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        {"Sid": "NoDeleteWithoutMFA", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    ]}
    name, key_id, secret = new_user(server, policy)
    home = tmp_path / "home"
    write_profiles(home, {"root": (ACCESS_KEY, SECRET_KEY, None), "user": (key_id, secret, None)})

    assert aws(server, home, "user", "s3", "cp", f"s3://{bucket}/report.csv", str(tmp_path / "r")).returncode == 0
    refused = aws(server, home, "user", "s3", "rm", f"s3://{bucket}/report.csv")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr

    seed_file = tmp_path / "seed.txt"
    created = aws(server, home, "root", "iam", "create-virtual-mfa-device", "--virtual-mfa-device-name",
                  f"{name}-phone", "--outfile", str(seed_file), "--bootstrap-method", "Base32StringSeed")
    assert created.returncode == 0, created.stderr
    serial = json.loads(created.stdout)["VirtualMFADevice"]["SerialNumber"]
    assert serial.endswith(f":mfa/{name}-phone")
    seed = seed_file.read_text().strip()
    now = time.time()
    enabled = aws(server, home, "root", "iam", "enable-mfa-device", "--user-name", name, "--serial-number", serial,
                  "--authentication-code1", totp(seed, now - 30), "--authentication-code2", totp(seed, now))
    assert enabled.returncode == 0, enabled.stderr
    listed = json.loads(aws(server, home, "root", "iam", "list-mfa-devices", "--user-name", name).stdout)
    assert [d["SerialNumber"] for d in listed["MFADevices"]] == [serial]

    # The enabling codes spent the current step; the next step's code is still within the window.
    code = totp(seed, now + 30)
    got = aws(server, home, "user", "sts", "get-session-token", "--serial-number", serial, "--token-code", code,
              "--duration-seconds", "900")
    assert got.returncode == 0, got.stderr
    creds = json.loads(got.stdout)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    replayed = aws(server, home, "user", "sts", "get-session-token", "--serial-number", serial, "--token-code", code)
    assert replayed.returncode != 0 and "AccessDenied" in replayed.stderr, "a code is accepted once"

    # The session expires 5 s from now (moved in the store before its first use).
    set_session_expiry(server, creds["AccessKeyId"], time.time() + 5)
    write_profiles(home, {"root": (ACCESS_KEY, SECRET_KEY, None), "user": (key_id, secret, None),
                          "mfa": (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])})
    who = json.loads(aws(server, home, "mfa", "sts", "get-caller-identity").stdout)
    assert who["Arn"].endswith(f":user/{name}")
    deleted = aws(server, home, "mfa", "s3", "rm", f"s3://{bucket}/report.csv")
    assert deleted.returncode == 0, deleted.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="report.csv")
    time.sleep(5.5)
    expired = aws(server, home, "mfa", "s3", "rm", f"s3://{bucket}/later.csv")
    assert expired.returncode != 0 and "ExpiredToken" in expired.stderr, expired.stderr
    assert s3.get_object(Bucket=bucket, Key="later.csv")["Body"].read() == b"q4"

    denials = [row for row in audit_rows(server, event="policy.denied") if row["principal"].endswith(f"/{name}")]
    assert any("s3:DeleteObject" in row["reason"] and "NoDeleteWithoutMFA" in row["reason"] for row in denials)
    assert not any(secret in json.dumps(row) for row in denials)


def test_a_session_without_mfa_and_a_wrong_token_are_refused(server, bucket, s3):
    policy = allow(["s3:DeleteObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/*",
                   Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    _, key_id, secret = new_user(server, policy)
    creds = client(server, "sts", key_id, secret).get_session_token(DurationSeconds=900)["Credentials"]
    plain = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert error_code(lambda: plain.put_object(Bucket=bucket, Key="k", Body=b"x")) == "AccessDenied"
    forged = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"][:-4] + "AAAA")
    assert error_code(lambda: forged.list_objects_v2(Bucket=bucket)) == "InvalidToken"
    missing = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"])
    assert error_code(lambda: missing.list_objects_v2(Bucket=bucket)) == "InvalidToken"
    # Sessions from GetSessionToken without MFA cannot call IAM.
    iam = client(server, "iam", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert error_code(lambda: iam.list_users()) == "AccessDenied"
    assert error_code(lambda: client(server, "sts", "ASIANOSUCHSESSION000", "x").get_caller_identity()) \
        == "InvalidClientTokenId"


def test_a_deactivated_or_deleted_key_stops_its_presigned_urls_at_once(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"hello")
    name, key_id, secret = new_user(server, allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    user_s3 = client(server, "s3", key_id, secret)
    url = user_s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "doc.txt"}, ExpiresIn=600)
    assert requests.get(url, timeout=10).content == b"hello"
    iam = client(server, "iam")
    # Uses are written every few seconds, as AWS reports them (within hours).
    deadline = time.monotonic() + 10
    while "LastUsedDate" not in (used := iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]):
        assert time.monotonic() < deadline, used
        time.sleep(0.5)
    assert used["ServiceName"] == "s3"
    iam.update_access_key(UserName=name, AccessKeyId=key_id, Status="Inactive")
    assert requests.get(url, timeout=10).status_code == 403
    assert error_code(lambda: user_s3.get_object(Bucket=bucket, Key="doc.txt")) == "InvalidAccessKeyId"
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key_id, "Inactive")]
    iam.update_access_key(UserName=name, AccessKeyId=key_id, Status="Active")
    assert requests.get(url, timeout=10).status_code == 200
    # A policy change applies to the next request, presigned or not.
    iam.delete_user_policy(UserName=name, PolicyName="p")
    assert requests.get(url, timeout=10).status_code == 403
    iam.put_user_policy(UserName=name, PolicyName="p",
                        PolicyDocument=json.dumps(allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    assert requests.get(url, timeout=10).status_code == 200
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    assert requests.get(url, timeout=10).status_code == 403
    assert error_code(lambda: iam.delete_access_key(UserName=name, AccessKeyId=key_id)) == "NoSuchEntity"


def test_home_prefixes_by_user_name(server, bucket, s3):
    """Per-user home prefixes with ${aws:username}, in resources and in an s3:prefix condition."""
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}},
    ]}
    alice, alice_key, alice_secret = new_user(server, policy)
    bob, _, _ = new_user(server, policy)
    mine = client(server, "s3", alice_key, alice_secret)
    mine.put_object(Bucket=bucket, Key=f"home/{alice}/notes.txt", Body=b"mine")
    assert mine.get_object(Bucket=bucket, Key=f"home/{alice}/notes.txt")["Body"].read() == b"mine"
    listed = mine.list_objects_v2(Bucket=bucket, Prefix=f"home/{alice}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"home/{alice}/notes.txt"]
    assert error_code(lambda: mine.put_object(Bucket=bucket, Key=f"home/{bob}/x", Body=b"x")) == "AccessDenied"
    assert error_code(lambda: mine.list_objects_v2(Bucket=bucket, Prefix=f"home/{bob}/")) == "AccessDenied"
    assert error_code(lambda: mine.list_objects_v2(Bucket=bucket)) == "AccessDenied"


def presign_at(key_id, signed_at, expires=900):
    """A SigV4 presigned GET URL as if signed at `signed_at` (a datetime), computed here."""
    amz_date = signed_at.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{signed_at:%Y%m%d}/{REGION}/s3/aws4_request"
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted({
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{key_id}/{scope}", "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host"}.items()))
    return query, amz_date, scope


def test_signature_age_and_query_string_auth_can_be_forbidden(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    young = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
         "Condition": {"NumericGreaterThan": {"s3:signatureAge": "600000"}}},
    ]}
    _, key_id, secret = new_user(server, young)
    host = server.endpoint.removeprefix("http://")

    def signed_url(age_seconds):
        at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age_seconds)
        query, amz_date, scope = presign_at(key_id, at)
        canonical = f"GET\n/{bucket}/k\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        k = ("AWS4" + secret).encode()
        for part in (at.strftime("%Y%m%d"), REGION, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{server.endpoint}/{bucket}/k?{query}&X-Amz-Signature={signature}"

    assert requests.get(signed_url(60), timeout=10).content == b"v"
    assert requests.get(signed_url(660), timeout=10).status_code == 403, "a URL signed 11 minutes ago"

    no_query_auth = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
         "Condition": {"StringEquals": {"s3:authType": "REST-QUERY-STRING"}}},
    ]}
    _, key_id, secret = new_user(server, no_query_auth)
    user_s3 = client(server, "s3", key_id, secret)
    assert user_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    url = user_s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    assert requests.get(url, timeout=10).status_code == 403


def test_share_links_are_minted_within_policy_and_scoped_to_their_creator(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="plan.pdf", Body=b"%PDF")
    minting = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": "latchkey:CreateShare", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"NumericLessThanEquals": {"latchkey:ShareExpiresIn": "3600"},
                       "Bool": {"aws:MultiFactorAuthPresent": "true"}}},
    ]}
    name, key_id, secret = new_user(server, minting)
    other, other_key, other_secret = new_user(server, allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"))

    long_term = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "plan.pdf"}, key_id, secret)
    assert long_term.status_code == 403, "minting requires MFA by policy"
    creds = client(server, "sts", key_id, secret).get_session_token(DurationSeconds=900)["Credentials"]
    session = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "plan.pdf"}, *session).status_code == 403

    # With an MFA session the cap on lifetimes applies.
    iam = client(server, "iam")
    serial, seed, now = enable_virtual_device(server, name)
    creds = client(server, "sts", key_id, secret).get_session_token(
        SerialNumber=serial, TokenCode=totp(seed, now + 30), DurationSeconds=900)["Credentials"]
    mfa = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    too_long = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "plan.pdf", "expires_in": 7200}, *mfa)
    assert too_long.status_code == 403
    made = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "plan.pdf", "expires_in": 600,
                                                    "max_uses": 5}, *mfa)
    assert made.status_code == 201, made.text
    link = made.json()

    # Another user neither sees nor revokes it; its creator and root do.
    theirs = signed_api(server, "GET", "/-/shares", None, other_key, other_secret).json()["shares"]
    assert link["id"] not in [s["id"] for s in theirs]
    assert signed_api(server, "GET", f"/-/shares/{link['id']}", None, other_key, other_secret).status_code == 404
    assert signed_api(server, "DELETE", f"/-/shares/{link['id']}", None, other_key, other_secret).status_code == 404
    mine = signed_api(server, "GET", "/-/shares", None, key_id, secret).json()["shares"]
    assert [s["id"] for s in mine] == [link["id"]] and mine[0]["principal"].endswith(f":user/{name}")
    assert link["id"] in [s["id"] for s in api(server, "GET", "/-/shares").json()["shares"]]

    assert requests.get(link["api_url"], timeout=10).content == b"%PDF"
    # The creator loses read access: the link stops, and the audit trail says why.
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}))
    assert requests.get(link["api_url"], timeout=10).status_code == 403
    reasons = [row["reason"] for row in audit_rows(server, share_id=link["id"]) if row["event"] == "share.denied"]
    assert reasons == ["creator_denied"]


def test_called_via_tells_reads_through_links_from_direct_reads(server, bucket, s3):
    """What a link does is done through the share service (aws:CalledVia = shares.latchkey): a
    user may hand out links to what it may not download itself, and a deny can keep what a user
    reads from being shared."""
    s3.put_object(Bucket=bucket, Key="brochure.pdf", Body=b"%PDF brochure")
    via_links = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "latchkey:CreateShare", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": "shares.latchkey"},
                       "StringEquals": {"aws:CalledViaFirst": "shares.latchkey"}}},
    ]}
    _, key_id, secret = new_user(server, via_links)
    assert error_code(lambda: client(server, "s3", key_id, secret).get_object(Bucket=bucket, Key="brochure.pdf")) \
        == "AccessDenied"
    made = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "brochure.pdf"}, key_id, secret)
    assert made.status_code == 201, made.text
    assert requests.get(made.json()["api_url"], timeout=10).content == b"%PDF brochure"

    no_sharing = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "latchkey:CreateShare"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": "shares.latchkey"}}},
    ]}
    _, key_id, secret = new_user(server, no_sharing)
    assert client(server, "s3", key_id, secret).get_object(Bucket=bucket, Key="brochure.pdf")["Body"].read() \
        == b"%PDF brochure"
    refused = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "brochure.pdf"}, key_id, secret)
    assert refused.status_code == 403, refused.text


def signed_api(server, method, path, body, key_id, secret, token=None):
    """The share API, signed with the given (possibly temporary) credentials."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json", "x-amz-content-sha256": hashlib.sha256(data).hexdigest()}
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=data, headers=headers)
    SigV4Auth(Credentials(key_id, secret, token), "s3", REGION).add_auth(request)
    return requests.request(method, request.url, data=data, headers=dict(request.headers), timeout=10,
                            verify=getattr(server, "ca", True))


def test_iam_errors_are_aws_errors(server):
    iam = client(server, "iam")
    name, key_id, secret = new_user(server)
    assert error_code(lambda: iam.create_user(UserName=name.upper())) == "EntityAlreadyExists"
    assert error_code(lambda: iam.get_user(UserName="nobody-" + name)) == "NoSuchEntity"
    iam.create_access_key(UserName=name)
    assert error_code(lambda: iam.create_access_key(UserName=name)) == "LimitExceeded"
    with pytest.raises(ClientError) as bad:
        iam.put_user_policy(UserName=name, PolicyName="bad", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}))
    assert bad.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert "Statement[0]" in bad.value.response["Error"]["Message"]
    assert error_code(lambda: iam.delete_user(UserName=name)) == "DeleteConflict"
    assert error_code(lambda: client(server, "iam", "AKIANOSUCHKEY0000000", "x").list_users()) \
        == "InvalidClientTokenId"
    assert error_code(lambda: client(server, "iam", key_id, "wrong-secret").list_users()) == "SignatureDoesNotMatch"
    user = client(server, "iam", key_id, secret)
    with pytest.raises(ClientError) as denied:
        user.list_users()
    message = denied.value.response["Error"]["Message"]
    assert f"User: arn:aws:iam::000000000000:user/{name} is not authorized to perform: iam:ListUsers" in message
    refusals = [row["reason"] for row in audit_rows(server, event="policy.denied")
                if row["principal"] == f"arn:aws:iam::000000000000:user/{name}"]
    assert any(r.startswith("ListUsers: ") and "iam:ListUsers" in r for r in refusals), refusals


def test_a_deactivation_through_one_replica_refuses_on_the_other_within_a_second(replicas, pg_url, tmp_path):
    first, second = replicas
    s3 = first.client()
    s3.create_bucket(Bucket="replicated")
    s3.put_object(Bucket="replicated", Key="k", Body=b"v")
    name, key_id, secret = new_user(first, allow("s3:GetObject", "arn:aws:s3:::replicated/*"))
    on_second = client(second, "s3", key_id, secret)
    deadline = time.monotonic() + 5
    while True:  # the creation reaches the second replica the same way
        try:
            assert on_second.get_object(Bucket="replicated", Key="k")["Body"].read() == b"v"
            break
        except ClientError:
            assert time.monotonic() < deadline, "the new key never worked on the other replica"
            time.sleep(0.05)
    client(first, "iam").update_access_key(UserName=name, AccessKeyId=key_id, Status="Inactive")
    changed = time.monotonic()
    while True:
        try:
            on_second.get_object(Bucket="replicated", Key="k")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidAccessKeyId"
            break
        assert time.monotonic() - changed < 1.0, "the other replica still accepts the key after 1 s"
        time.sleep(0.02)
    # A replica with another master key could open no secret: it refuses to start, saying why.
    stranger = Server(tmp_path / "other", meta_url=pg_url, env={"LATCHKEY_MASTER_KEY": "cd" * 32}, log_pipe=True)
    with pytest.raises(RuntimeError, match="exited early"):
        stranger.start()
    assert "master key does not match" in stranger.proc.stderr.read()


def test_roles_are_assumed_only_as_their_trust_policy_says(server, bucket):
    iam = client(server, "iam")
    trusted, trusted_key, trusted_secret = new_user(server)
    stranger, stranger_key, stranger_secret = new_user(server)
    role = f"r-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{trusted}"},
        "Condition": {"StringLike": {"sts:RoleSessionName": "ci-*"}}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=7200,
                          Tags=[{"Key": "team", "Value": "ops"}])["Role"]["Arn"]
    assert arn == f"arn:aws:iam::000000000000:role/{role}"
    assert json.loads(json.dumps(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"])) == trust

    sts = client(server, "sts", trusted_key, trusted_secret)
    got = sts.assume_role(RoleArn=arn, RoleSessionName="ci-42", DurationSeconds=1800)
    assert got["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::000000000000:assumed-role/{role}/ci-42"
    creds = got["Credentials"]
    as_role = client(server, "sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert as_role.get_caller_identity()["Arn"].endswith(f":assumed-role/{role}/ci-42")
    # The role has no policy yet: its sessions may do nothing.
    role_s3 = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert error_code(lambda: role_s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"

    assert error_code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="manual")) == "AccessDenied"
    assert error_code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="ci-1", DurationSeconds=9000)) \
        == "ValidationError"
    other = client(server, "sts", stranger_key, stranger_secret)
    assert error_code(lambda: other.assume_role(RoleArn=arn, RoleSessionName="ci-1")) == "AccessDenied"
    assert error_code(lambda: client(server, "sts").assume_role(RoleArn=arn, RoleSessionName="ci-1")) \
        == "AccessDenied", "root cannot assume roles"
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}
    assert error_code(lambda: iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(bad))) \
        == "MalformedPolicyDocument"
    assert error_code(lambda: iam.delete_role(RoleName="no-" + role)) == "NoSuchEntity"
    iam.delete_role(RoleName=role)
    assert error_code(lambda: as_role.get_caller_identity()) == "InvalidClientTokenId", \
        "a deleted role's sessions end"


def test_role_sessions_carry_the_roles_policies_within_their_session_policy(server, bucket, s3):
    iam = client(server, "iam")
    user, key_id, secret = new_user(server)
    role = f"r-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="rw", PolicyDocument=json.dumps(
        allow(["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/*")))
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["rw"]
    sts = client(server, "sts", key_id, secret)

    def session(**kwargs):
        c = sts.assume_role(RoleArn=arn, RoleSessionName="work", **kwargs)["Credentials"]
        return client(server, "s3", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    full = session()
    full.put_object(Bucket=bucket, Key="by-role", Body=b"r")
    assert full.get_object(Bucket=bucket, Key="by-role")["Body"].read() == b"r"
    # A session policy narrows the session to what both allow.
    read_only = session(Policy=json.dumps(allow("s3:GetObject", "*")))
    assert read_only.get_object(Bucket=bucket, Key="by-role")["Body"].read() == b"r"
    assert error_code(lambda: read_only.put_object(Bucket=bucket, Key="x", Body=b"x")) == "AccessDenied"
    assert error_code(lambda: session(Policy='{"Version": "2012-10-17", "Statement": []}')) \
        == "MalformedPolicyDocument"
    assert error_code(lambda: iam.delete_role(RoleName=role)) == "DeleteConflict"
    # Removing the role's policy takes effect on its live sessions at once.
    iam.delete_role_policy(RoleName=role, PolicyName="rw")
    assert error_code(lambda: full.get_object(Bucket=bucket, Key="by-role")) == "AccessDenied"


def signed_request(server, method, path_and_query, key_id, secret, headers=None, body=b""):
    """A SigV4-signed S3 request with exactly the query string given (botocore would normalise it)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    all_headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **(headers or {})}
    request = AWSRequest(method=method, url=f"{server.endpoint}{path_and_query}", data=body, headers=all_headers)
    SigV4Auth(Credentials(key_id, secret), "s3", REGION).add_auth(request)
    return requests.request(method, request.url, data=body, headers=dict(request.headers), timeout=10)


def test_conditions_judge_the_parameters_the_operation_uses(server, bucket, s3):
    """Review findings: `Prefix=` (not `prefix=`) slipped past an s3:prefix condition, and a copy
    source with a `?` in its key was authorised as another key."""
    for key in ("home/alice/a.txt", "home/bob/b.txt", "pub", "pub?hidden"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "home/alice/*"}}},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/pub"},
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/dst/*"},
    ]}
    _, key_id, secret = new_user(server, policy)
    own = signed_request(server, "GET", f"/{bucket}?list-type=2&prefix=home%2Falice%2F", key_id, secret)
    assert own.status_code == 200 and "home/bob" not in own.text
    for query in ("list-type=2&Prefix=home%2Falice%2F", "list-type=2&Prefix=home%2Falice%2F&prefix=home%2Fbob%2F"):
        assert signed_request(server, "GET", f"/{bucket}?{query}", key_id, secret).status_code == 403, query
    copied = signed_request(server, "PUT", f"/{bucket}/dst/out", key_id, secret,
                            headers={"x-amz-copy-source": f"{bucket}/pub%3Fhidden"})
    assert copied.status_code == 403, copied.text
    copied = signed_request(server, "PUT", f"/{bucket}/dst/out", key_id, secret,
                            headers={"x-amz-copy-source": f"{bucket}/pub?hidden"})
    assert copied.status_code == 403, copied.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="dst/")


def test_a_session_dies_with_its_user_and_does_not_pass_to_a_namesake(server, bucket, s3):
    """Review finding: a session found its principal by name, so a new user (or role) of the same
    name revived it with the new one's permissions."""
    iam = client(server, "iam")
    name, key_id, secret = new_user(server)
    creds = client(server, "sts", key_id, secret).get_session_token(DurationSeconds=900)["Credentials"]
    old = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    iam.delete_user(UserName=name)
    assert error_code(lambda: old.list_objects_v2(Bucket=bucket)) == "InvalidAccessKeyId"
    iam.create_user(UserName=name.upper())
    iam.put_user_policy(UserName=name.upper(), PolicyName="all", PolicyDocument=json.dumps(allow("s3:*", "*")))
    assert error_code(lambda: old.list_objects_v2(Bucket=bucket)) == "InvalidAccessKeyId"


def test_mfa_codes_cannot_be_guessed_at_request_speed(server):
    name, key_id, secret = new_user(server)
    serial, seed, now = enable_virtual_device(server, name)
    device = {"SerialNumber": serial}
    sts = client(server, "sts", key_id, secret)
    right = totp(seed, now + 30)
    wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 6)]
    for code in wrong:
        assert error_code(lambda: sts.get_session_token(SerialNumber=device["SerialNumber"], TokenCode=code)) \
            == "AccessDenied"
    # Five failures lock the device for five minutes: now even the right code is refused.
    assert error_code(lambda: sts.get_session_token(SerialNumber=device["SerialNumber"], TokenCode=right)) \
        == "AccessDenied"


def mfa_attempts_taken(server, serial):
    """The attempts the store counts for a device in its current window."""
    schema = server.schema()
    if schema:
        out = psql(f"SELECT failures FROM {schema}.iam_mfa_devices WHERE serial = '{serial}'")
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT failures FROM iam_mfa_devices WHERE serial = ?", (serial,)).fetchone()[0]
    finally:
        db.close()


def test_concurrent_wrong_mfa_codes_get_five_checks_in_all(server):
    """Each code takes an attempt before it is checked, atomically: 40 guesses sent at once are
    not 40 checks (review finding: the lock was read before and the failure counted after)."""
    name, key_id, secret = new_user(server)
    serial, seed, now = enable_virtual_device(server, name)
    right = totp(seed, now + 30)
    wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 41)]
    barrier = threading.Barrier(len(wrong))
    codes = []

    def guess(code):
        sts = client(server, "sts", key_id, secret)
        barrier.wait()
        codes.append(error_code(lambda: sts.get_session_token(SerialNumber=serial, TokenCode=code)))

    threads = [threading.Thread(target=guess, args=(code,)) for code in wrong]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == ["AccessDenied"] * len(wrong)
    assert mfa_attempts_taken(server, serial) == 5
    sts = client(server, "sts", key_id, secret)
    assert error_code(lambda: sts.get_session_token(SerialNumber=serial, TokenCode=right)) == "AccessDenied"


def test_right_mfa_codes_give_their_attempt_back(server):
    """Using a device does not lock it: only wrong codes keep their attempt."""
    name, key_id, secret = new_user(server)
    serial, seed, now = enable_virtual_device(server, name, at=time.time() - 60)
    sts = client(server, "sts", key_id, secret)
    # The current step's code and the next one's (both still valid if a step ends meanwhile).
    for at in (now + 60, now + 90):
        sts.get_session_token(SerialNumber=serial, TokenCode=totp(seed, at))
    assert mfa_attempts_taken(server, serial) == 0


def test_wrong_mfa_codes_are_counted_across_replicas(replicas):
    """Three wrong codes on one replica and two on the other lock the device on both: a replica
    counting only its own would still take the right code."""
    first, second = replicas
    name, key_id, secret = new_user(first)
    serial, seed, now = enable_virtual_device(first, name)
    right = totp(seed, now + 30)
    wrong = iter(f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 6))
    on_first, on_second = client(first, "sts", key_id, secret), client(second, "sts", key_id, secret)
    deadline = time.monotonic() + 5
    while True:  # the new key reaches the second replica through the store's notifications
        try:
            on_second.get_caller_identity()
            break
        except ClientError:
            assert time.monotonic() < deadline, "the new key never worked on the other replica"
            time.sleep(0.05)
    for sts in (on_first, on_first, on_first, on_second, on_second):
        code = next(wrong)
        assert error_code(lambda: sts.get_session_token(SerialNumber=serial, TokenCode=code)) == "AccessDenied"
    assert error_code(lambda: on_first.get_session_token(SerialNumber=serial, TokenCode=right)) == "AccessDenied"


def test_assume_role_with_mfa_and_session_tags(server, bucket, s3):
    """AssumeRole's MFA fields make aws:MultiFactorAuthPresent true for the session, and its tags
    are the session's principal tags (ABAC on session tags)."""
    s3.put_object(Bucket=bucket, Key="finance/q3.csv", Body=b"q3")
    iam = client(server, "iam")
    user, key_id, secret = new_user(server)
    role = f"r-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="abac", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/${{aws:PrincipalTag/team}}/*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}))
    serial, seed, now = enable_virtual_device(server, user)
    device = {"SerialNumber": serial}
    sts = client(server, "sts", key_id, secret)

    def session(**kwargs):
        c = sts.assume_role(RoleArn=arn, RoleSessionName="abac", **kwargs)["Credentials"]
        return client(server, "s3", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    finance_without_mfa = session(Tags=[{"Key": "team", "Value": "finance"}])
    assert error_code(lambda: finance_without_mfa.get_object(Bucket=bucket, Key="finance/q3.csv")) == "AccessDenied"
    finance = session(Tags=[{"Key": "team", "Value": "finance"}], SerialNumber=device["SerialNumber"],
                      TokenCode=totp(seed, now + 30))
    assert finance.get_object(Bucket=bucket, Key="finance/q3.csv")["Body"].read() == b"q3"
    assert error_code(lambda: finance.get_object(Bucket=bucket, Key="legal/x")) == "AccessDenied"


def test_the_qr_code_of_a_virtual_device_is_a_png(server, tmp_path):
    home = tmp_path / "home"
    write_profiles(home, {"root": (ACCESS_KEY, SECRET_KEY, None)})
    png = tmp_path / "qr.png"
    out = aws(server, home, "root", "iam", "create-virtual-mfa-device", "--virtual-mfa-device-name",
              f"qr-{uuid.uuid4().hex[:8]}", "--outfile", str(png), "--bootstrap-method", "QRCodePNG")
    assert out.returncode == 0, out.stderr
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 200


def test_link_minting_policies_cap_uses_and_methods(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="f.txt", Body=b"f")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": "latchkey:CreateShare", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"NumericLessThanEquals": {"latchkey:ShareMaxUses": "3"},
                       "StringEquals": {"latchkey:ShareMethod": "GET"}}},
    ]}
    _, key_id, secret = new_user(server, policy)
    ok = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "f.txt", "max_uses": 3}, key_id, secret)
    assert ok.status_code == 201, ok.text
    assert signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "f.txt", "max_uses": 4},
                      key_id, secret).status_code == 403
    assert signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "up.txt", "method": "PUT"},
                      key_id, secret).status_code == 403


def test_session_tags_need_sts_tag_session_in_the_trust_policy(server):
    iam = client(server, "iam")
    user, key_id, secret = new_user(server)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"}}]}
    arn = iam.create_role(RoleName=f"r-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    sts = client(server, "sts", key_id, secret)
    assert sts.assume_role(RoleArn=arn, RoleSessionName="plain")["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert error_code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="tagged",
                                              Tags=[{"Key": "team", "Value": "x"}])) == "AccessDenied"


def test_a_link_does_not_pass_to_a_namesake_of_its_creator(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="f.txt", Body=b"f")
    policy = allow(["s3:GetObject", "latchkey:CreateShare"], f"arn:aws:s3:::{bucket}/*")
    name, key_id, secret = new_user(server, policy)
    link = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "f.txt", "max_uses": 5}, key_id, secret)
    assert link.status_code == 201, link.text
    url = link.json()["api_url"]
    assert requests.get(url, timeout=10).content == b"f"
    iam = client(server, "iam")
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    iam.delete_user_policy(UserName=name, PolicyName="p")
    iam.delete_user(UserName=name)
    assert requests.get(url, timeout=10).status_code == 403, "the creator is gone"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    assert requests.get(url, timeout=10).status_code == 403, "a new user of the same name is not the creator"
    reasons = [row["reason"] for row in audit_rows(server, share_id=link.json()["id"]) if row["event"] == "share.denied"]
    assert reasons == ["creator_denied", "creator_denied"]


def test_a_link_minted_with_temporary_credentials_ends_with_the_session(fresh_server):
    server = fresh_server
    s3 = server.client()
    s3.create_bucket(Bucket="temp-links")
    s3.put_object(Bucket="temp-links", Key="f.txt", Body=b"f")
    iam = client(server, "iam")
    user, key_id, secret = new_user(server)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"}}]}
    arn = iam.create_role(RoleName="minter", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="minter", PolicyName="p", PolicyDocument=json.dumps(
        allow(["s3:GetObject", "latchkey:CreateShare"], "arn:aws:s3:::temp-links/*")))
    c = client(server, "sts", key_id, secret).assume_role(RoleArn=arn, RoleSessionName="mint")["Credentials"]
    made = signed_api(server, "POST", "/-/shares", {"bucket": "temp-links", "key": "f.txt", "max_uses": 5},
                      c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    assert made.status_code == 201, made.text
    link = made.json()
    assert requests.get(link["api_url"], timeout=10).content == b"f"
    # The session expires (moved in the store while the server is down: sessions are cached).
    server.stop()
    set_session_expiry(server, c["AccessKeyId"], time.time() - 1)
    server.start()
    assert requests.get(link["api_url"], timeout=10).status_code == 403
    reasons = [row["reason"] for row in audit_rows(server, share_id=link["id"]) if row["event"] == "share.denied"]
    assert reasons == ["creator_denied"]


def test_object_tag_conditions(server, bucket, s3):
    """s3:RequestObjectTag/* judges the tags a write asks for; s3:ExistingObjectTag/* the tags an
    object has (looked up only when a policy reads them)."""
    s3.put_object(Bucket=bucket, Key="open.txt", Body=b"open", Tagging="classification=public")
    s3.put_object(Bucket=bucket, Key="closed.txt", Body=b"closed", Tagging="classification=secret")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/classification": "public"},
                       "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["classification"]}}},
    ]}
    _, key_id, secret = new_user(server, policy)
    user_s3 = client(server, "s3", key_id, secret)
    assert user_s3.get_object(Bucket=bucket, Key="open.txt")["Body"].read() == b"open"
    assert error_code(lambda: user_s3.get_object(Bucket=bucket, Key="closed.txt")) == "AccessDenied"
    user_s3.put_object(Bucket=bucket, Key="new.txt", Body=b"n", Tagging="classification=public")
    assert error_code(lambda: user_s3.put_object(Bucket=bucket, Key="x.txt", Body=b"x")) == "AccessDenied"
    assert error_code(lambda: user_s3.put_object(Bucket=bucket, Key="y.txt", Body=b"y",
                                                 Tagging="classification=secret")) == "AccessDenied"
    assert error_code(lambda: user_s3.put_object(Bucket=bucket, Key="z.txt", Body=b"z",
                                                 Tagging="classification=public&owner=me")) == "AccessDenied"
    # Retagging an object changes what the policy lets through, at once.
    s3.put_object_tagging(Bucket=bucket, Key="closed.txt",
                          Tagging={"TagSet": [{"Key": "classification", "Value": "public"}]})
    assert user_s3.get_object(Bucket=bucket, Key="closed.txt")["Body"].read() == b"closed"


def test_object_tags_read_only_through_a_policy_variable_are_looked_up(server, bucket, s3):
    """ABAC on object tags written the other way round: the object's tag is a variable in the
    value of a principal-tag condition, not a condition key."""
    s3.put_object(Bucket=bucket, Key="red.txt", Body=b"red", Tagging="team=red")
    s3.put_object(Bucket=bucket, Key="blue.txt", Body=b"blue", Tagging="team=blue")
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "${s3:ExistingObjectTag/team}"}}}]},
        tags=[("team", "red")])
    user_s3 = client(server, "s3", key_id, secret)
    assert user_s3.get_object(Bucket=bucket, Key="red.txt")["Body"].read() == b"red"
    assert error_code(lambda: user_s3.get_object(Bucket=bucket, Key="blue.txt")) == "AccessDenied"


def test_put_object_tagging_is_judged_on_the_tags_in_its_body(server, bucket, s3):
    """PutObjectTagging names its tags in the XML body: s3:RequestObjectTag/* and
    s3:RequestObjectTagKeys judge them, as for a PutObject with x-amz-tagging."""
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"d", Tagging="classification=secret")
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/classification": ["public", "internal"]},
                       "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["classification", "owner"]}}}]})
    user_s3 = client(server, "s3", key_id, secret)

    def retag(**tags):
        return lambda: user_s3.put_object_tagging(
            Bucket=bucket, Key="doc.txt", Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})

    for refused in ({"classification": "secret"}, {"classification": "public", "extra": "x"}, {"owner": "me"}, {}):
        assert error_code(retag(**refused)) == "AccessDenied", refused
    assert s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"] == \
        [{"Key": "classification", "Value": "secret"}], "a refused retagging changes nothing"
    denied = [row for row in audit_rows(server, "policy.denied")
              if row["reason"].startswith(f"s3:PutObjectTagging on arn:aws:s3:::{bucket}/doc.txt:")]
    assert len(denied) == 4, denied
    retag(classification="internal", owner="me")()
    assert sorted((t["Key"], t["Value"]) for t in s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"]) == \
        [("classification", "internal"), ("owner", "me")]


def test_iam_tagging_actions_carry_their_request_tags(server):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["iam:CreateUser", "iam:TagUser"], "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestTag/team": "ops"},
                      "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}}]}
    _, key_id, secret = new_user(server, policy)
    iam = client(server, "iam", key_id, secret)
    created = f"u-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=created, Tags=[{"Key": "team", "Value": "ops"}])
    assert error_code(lambda: iam.create_user(UserName=created + "x", Tags=[{"Key": "team", "Value": "dev"}])) \
        == "AccessDenied"
    assert error_code(lambda: iam.create_user(UserName=created + "y")) == "AccessDenied"
    assert error_code(lambda: iam.tag_user(UserName=created, Tags=[{"Key": "team", "Value": "ops"},
                                                                   {"Key": "cost", "Value": "1"}])) == "AccessDenied"
