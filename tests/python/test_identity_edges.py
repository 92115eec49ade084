"""Identity edge cases: MFA sessions and spent codes across replicas, aws:MultiFactorAuthAge, the
credential scope of IAM/STS signatures, and object keys with odd characters against home-prefix
policies (literal `..` and `//`, percent-encoded paths, presigned URLs)."""

import hashlib
import http.client
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, audit_rows
from test_identity import allow, client, enable_virtual_device, error_code, new_user, totp

ACCOUNT = "000000000000"


def user_arn(name):
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def denials(server, name):
    """The reasons of the `policy.denied` audit rows of user `name`, oldest first."""
    return [row["reason"] for row in audit_rows(server, event="policy.denied") if row["principal"] == user_arn(name)]


def eventually(call, what, timeout=5):
    """`call()`'s result once it stops raising ClientError (a change reaching another replica)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError:
            assert time.monotonic() < deadline, what
            time.sleep(0.05)


def error_of(body):
    """The <Code> of an S3 or IAM/STS XML error body."""
    found = re.search(rb"<Code>([^<]*)</Code>", body)
    return found.group(1).decode() if found else None


def send_verbatim(server, method, target, headers=None, body=b""):
    """One HTTP request whose request target goes on the wire byte for byte as given: requests and
    urllib3 would remove `..` segments from it. (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def s3_raw(server, method, wire_path, key_id, secret, signed_path=None, body=b""):
    """An S3 request sent with the path `wire_path` exactly, signed by botocore over `signed_path`
    (default: the same) as the canonical URI. S3SigV4Auth is botocore's SigV4Auth for S3: it signs
    the path as given, where SigV4Auth would remove dot segments and encode it once more."""
    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    request = AWSRequest(method=method, url=f"{server.endpoint}{signed_path or wire_path}", data=body, headers=headers)
    S3SigV4Auth(Credentials(key_id, secret), "s3", REGION).add_auth(request)
    return send_verbatim(server, method, wire_path, dict(request.headers), body)


def query_call(server, body, service, region, key_id=ACCESS_KEY, secret=SECRET_KEY):
    """An IAM/STS query call (a form POST to /) signed by botocore for `service` in `region`."""
    data = body.encode()
    request = AWSRequest(method="POST", url=f"{server.endpoint}/", data=data,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    return requests.post(request.url, data=data, headers=dict(request.headers), timeout=10)


# 1. Replicas: an MFA session and a spent code are the same on every replica.

def test_an_mfa_session_from_one_replica_works_on_the_other_where_its_code_is_spent(replicas):
    first, second = replicas
    root = first.client()
    root.create_bucket(Bucket="edges-mfa")
    for key in ("long-term.txt", "with-mfa.txt"):
        root.put_object(Bucket="edges-mfa", Key=key, Body=key.encode())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::edges-mfa", "arn:aws:s3:::edges-mfa/*"]},
        {"Sid": "DeleteWithMfa", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::edges-mfa/*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
    ]}
    name, key_id, secret = new_user(first, policy)
    # Enabled with the codes of a minute and half a minute ago: the last, the current and the next
    # step's codes are all unspent, and accepted in that order.
    serial, seed, at = enable_virtual_device(first, name, at=time.time() - 60)
    long_term_on_second = client(second, "s3", key_id, secret)
    eventually(lambda: long_term_on_second.get_object(Bucket="edges-mfa", Key="long-term.txt"),
               "the new user's key and policy never reached the other replica")
    assert error_code(lambda: long_term_on_second.delete_object(Bucket="edges-mfa", Key="long-term.txt")) \
        == "AccessDenied"

    code = totp(seed, at + 60)  # the current step's
    creds = client(first, "sts", key_id, secret).get_session_token(
        SerialNumber=serial, TokenCode=code, DurationSeconds=900)["Credentials"]
    session = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    who = client(second, "sts", *session).get_caller_identity()
    assert who["Arn"] == user_arn(name)
    client(second, "s3", *session).delete_object(Bucket="edges-mfa", Key="with-mfa.txt")
    assert [o["Key"] for o in root.list_objects_v2(Bucket="edges-mfa")["Contents"]] == ["long-term.txt"]

    # The code spent on the first replica is refused on the second...
    sts_on_second = client(second, "sts", key_id, secret)
    assert error_code(lambda: sts_on_second.get_session_token(SerialNumber=serial, TokenCode=code)) == "AccessDenied"
    # ... and so is the previous step's, unspent but older than a spent one; the next step's is
    # accepted there: the refusals are the spent step's, not a device the replica does not know.
    older = totp(seed, at + 30)
    assert error_code(lambda: sts_on_second.get_session_token(SerialNumber=serial, TokenCode=older)) == "AccessDenied"
    later = sts_on_second.get_session_token(SerialNumber=serial, TokenCode=totp(seed, at + 90))["Credentials"]
    assert later["AccessKeyId"].startswith("ASIA") and later["AccessKeyId"] != creds["AccessKeyId"]

    invalid = "GetSessionToken: MultiFactorAuthentication failed with invalid MFA one time pass code."
    assert denials(second, name) == [
        "s3:DeleteObject on arn:aws:s3:::edges-mfa/long-term.txt: no policy allows it", invalid, invalid]


# 2. aws:MultiFactorAuthAge.

def test_mfa_age_bounds_how_long_after_the_code_a_session_may_delete(server, bucket, s3):
    for key in ("at-once.txt", "too-late.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    policy = allow("s3:DeleteObject", f"arn:aws:s3:::{bucket}/*",
                   Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "4"}})
    name, key_id, secret = new_user(server, policy)
    sts = client(server, "sts", key_id, secret)

    # No MFA, no age: long-term keys and a session without MFA are refused.
    assert error_code(lambda: client(server, "s3", key_id, secret).delete_object(Bucket=bucket, Key="at-once.txt")) \
        == "AccessDenied"
    plain = sts.get_session_token(DurationSeconds=900)["Credentials"]
    plain_s3 = client(server, "s3", plain["AccessKeyId"], plain["SecretAccessKey"], plain["SessionToken"])
    assert error_code(lambda: plain_s3.delete_object(Bucket=bucket, Key="at-once.txt")) == "AccessDenied"

    serial, seed, now = enable_virtual_device(server, name)
    before_code = time.monotonic()
    creds = sts.get_session_token(SerialNumber=serial, TokenCode=totp(seed, now + 30),
                                  DurationSeconds=900)["Credentials"]
    mfa_s3 = client(server, "s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    mfa_s3.delete_object(Bucket=bucket, Key="at-once.txt")
    assert "at-once.txt" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert time.monotonic() - before_code < 4, "the first delete came too late to be judged 'at once'"

    # The session's MFA is more than 4 s old (whole seconds): the same session is refused.
    time.sleep(max(0.0, 5 - (time.monotonic() - before_code)))
    assert error_code(lambda: mfa_s3.delete_object(Bucket=bucket, Key="too-late.txt")) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="too-late.txt")["Body"].read() == b"too-late.txt"

    assert denials(server, name) == [f"s3:DeleteObject on arn:aws:s3:::{bucket}/{key}: no policy allows it"
                                     for key in ("at-once.txt", "at-once.txt", "too-late.txt")]


# 3. The credential scope of IAM and STS signatures.

def test_iam_and_sts_calls_signed_for_another_service_or_region_do_nothing(server):
    """Root's own key, so that nothing but the scope can be the reason for a refusal. (Which code
    the refusal carries is the next test's.)"""
    iam = client(server, "iam")
    name = f"u-{uuid.uuid4().hex[:10]}"
    create = f"Action=CreateUser&UserName={name}&Version=2010-05-08"
    # Rightly scoped, the helper's calls work.
    assert query_call(server, "Action=GetCallerIdentity&Version=2011-06-15", "sts", REGION).status_code == 200
    for service, region in (("s3", REGION), ("ec2", REGION), ("iam", "eu-west-1")):
        refused = query_call(server, create, service, region)
        assert refused.status_code == 403, (service, region, refused.text)
        assert error_of(refused.content) == "SignatureDoesNotMatch", refused.text
        assert "<CreateUserResult>" not in refused.text
    # Signed for STS, an IAM action is one STS does not have.
    as_sts = query_call(server, create, "sts", REGION)
    assert (as_sts.status_code, error_of(as_sts.content)) == (400, "InvalidAction"), as_sts.text
    assert error_code(lambda: iam.get_user(UserName=name)) == "NoSuchEntity"
    # An STS call signed for another region than the server's (us-east-1) issues nothing; the
    # message is AWS's.
    other_region = query_call(server, "Action=GetSessionToken&Version=2011-06-15", "sts", "eu-west-1")
    assert other_region.status_code == 403 and "<Credentials>" not in other_region.text, other_region.text
    assert "Credential should be scoped to a valid region, not 'eu-west-1'." in other_region.text.replace("&apos;", "'")


@pytest.mark.parametrize("service, region, action, message", [
    ("sts", "eu-west-1", "GetCallerIdentity&Version=2011-06-15", "scoped to a valid region, not 'eu-west-1'."),
    ("iam", "eu-west-1", "ListUsers&Version=2010-05-08", "scoped to a valid region, not 'eu-west-1'."),
    ("s3", REGION, "GetCallerIdentity&Version=2011-06-15", "scoped to correct service: 'sts'."),
    ("ec2", REGION, "ListUsers&Version=2010-05-08", "scoped to correct service: 'iam'."),
])
def test_a_wrong_credential_scope_is_refused_as_aws_refuses_it(server, service, region, action, message):
    refused = query_call(server, f"Action={action}", service, region)
    assert (refused.status_code, error_of(refused.content)) == (403, "SignatureDoesNotMatch"), refused.text
    assert f"Credential should be {message}" in refused.text.replace("&apos;", "'"), refused.text


def test_an_s3_request_signed_for_sts_is_refused(server, bucket, s3):
    """s3s would take a credential scope of service 'sts' as S3's; S3 refuses it, naming the
    service (the message is AWS's for a header-signed request too)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    request = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/k")
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "sts", REGION, expires=60).add_auth(request)
    assert requests.get(f"{server.endpoint}/{bucket}/k", timeout=10).status_code == 403, "the object is private"
    got = requests.get(request.url, timeout=10)
    assert (got.status_code, error_of(got.content)) == (400, "AuthorizationQueryParametersError"), got.text
    assert 'incorrect service "sts". This endpoint belongs to "s3".' in got.text.replace("&quot;", '"'), got.text


def test_a_regional_server_takes_sts_signed_for_its_region_and_iam_for_us_east_1(tmp_path):
    """With `region = "eu-west-1"` the server is like a regional STS endpoint (sts.eu-west-1): STS
    signatures must name eu-west-1; IAM, global, is signed for us-east-1."""
    server = Server(tmp_path / "data", config={"region": "eu-west-1"}).start()
    try:
        who = query_call(server, "Action=GetCallerIdentity&Version=2011-06-15", "sts", "eu-west-1")
        assert who.status_code == 200 and f"<Arn>arn:aws:iam::{ACCOUNT}:root</Arn>" in who.text, who.text
        listed = query_call(server, "Action=ListUsers&Version=2010-05-08", "iam", "us-east-1")
        assert listed.status_code == 200 and "<ListUsersResult>" in listed.text, listed.text
        refused = query_call(server, "Action=GetSessionToken&Version=2011-06-15", "sts", "us-east-1")
        assert refused.status_code == 403 and "<Credentials>" not in refused.text, refused.text
        assert "Credential should be scoped to a valid region, not 'us-east-1'." in refused.text.replace("&apos;", "'")
    finally:
        server.stop()


# 4. Keys with odd characters against home prefixes.

def home_policy(bucket):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}},
    ]}


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_keys_are_literal_strings_for_storage_and_policy(server, bucket, s3):
    alice, alice_key, alice_secret = new_user(server, home_policy(bucket))
    bob = f"b-{uuid.uuid4().hex[:10]}"
    s3.put_object(Bucket=bucket, Key=f"home/{bob}/x", Body=b"bob's")
    mine = client(server, "s3", alice_key, alice_secret)

    # `..` is two dots in a key: under alice's prefix, stored as sent, nothing of bob's touched.
    dotted = f"home/{alice}/../{bob}/x"
    mine.put_object(Bucket=bucket, Key=dotted, Body=b"alice's")
    mine.put_object(Bucket=bucket, Key=f"home/{alice}/../{bob}/y", Body=b"alice's y")
    assert keys(s3, bucket) == sorted([dotted, f"home/{alice}/../{bob}/y", f"home/{bob}/x"])
    assert s3.get_object(Bucket=bucket, Key=f"home/{bob}/x")["Body"].read() == b"bob's"
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key=f"home/{bob}/y")) == "NoSuchKey"
    assert mine.get_object(Bucket=bucket, Key=dotted)["Body"].read() == b"alice's"
    listed = mine.list_objects_v2(Bucket=bucket, Prefix=f"home/{alice}/")
    assert [o["Key"] for o in listed["Contents"]] == [dotted, f"home/{alice}/../{bob}/y"]
    assert error_code(lambda: mine.get_object(Bucket=bucket, Key=f"home/{bob}/x")) == "AccessDenied"

    # A doubled slash and a longer name are other prefixes than home/ALICE/.
    alice2 = new_user(server, home_policy(bucket), name=f"{alice}2")
    theirs = client(server, "s3", alice2[1], alice2[2])
    theirs.put_object(Bucket=bucket, Key=f"home/{alice}2/x", Body=b"alice2's")
    for key in (f"home//{alice}/x", f"home/{alice}2/x"):
        assert error_code(lambda: mine.put_object(Bucket=bucket, Key=key, Body=b"no")) == "AccessDenied", key
        assert error_code(lambda: mine.get_object(Bucket=bucket, Key=key)) == "AccessDenied", key
    for prefix in (f"home//{alice}/", f"home/{alice}", f"home/{alice}2/"):
        assert error_code(lambda: mine.list_objects_v2(Bucket=bucket, Prefix=prefix)) == "AccessDenied", prefix
    assert s3.get_object(Bucket=bucket, Key=f"home/{alice}2/x")["Body"].read() == b"alice2's"
    assert f"home//{alice}/x" not in keys(s3, bucket)
    # Root may write the doubled-slash key: it is a key like any other, stored as sent.
    s3.put_object(Bucket=bucket, Key=f"home//{alice}/x", Body=b"root's")
    assert f"home//{alice}/x" in keys(s3, bucket)

    arn = f"arn:aws:s3:::{bucket}"
    assert denials(server, alice) == [f"{refused}: no policy allows it" for refused in (
        f"s3:GetObject on {arn}/home/{bob}/x",
        f"s3:PutObject on {arn}/home//{alice}/x", f"s3:GetObject on {arn}/home//{alice}/x",
        f"s3:PutObject on {arn}/home/{alice}2/x", f"s3:GetObject on {arn}/home/{alice}2/x",
        f"s3:ListBucket on {arn}", f"s3:ListBucket on {arn}", f"s3:ListBucket on {arn}")]


def test_percent_encoded_keys_are_the_decoded_key_for_storage_and_policy(server, bucket, s3):
    """Raw requests: the path on the wire is percent-encoded by hand; the signature is over the
    canonical URI of the decoded key (what S3 and s3s compute)."""
    alice, key_id, secret = new_user(server, home_policy(bucket))
    bob = f"b-{uuid.uuid4().hex[:10]}"
    s3.put_object(Bucket=bucket, Key=f"home/{bob}/x", Body=b"bob's")

    status, body = s3_raw(server, "PUT", f"/{bucket}/home%2F{alice}%2Fslashes", key_id, secret,
                          signed_path=f"/{bucket}/home/{alice}/slashes", body=b"encoded slashes")
    assert status == 200, body
    status, body = s3_raw(server, "PUT", f"/{bucket}/home/{alice}/%2E%2E/{bob}/x", key_id, secret,
                          signed_path=f"/{bucket}/home/{alice}/../{bob}/x", body=b"encoded dots")
    assert status == 200, body
    assert keys(s3, bucket) == sorted([f"home/{alice}/slashes", f"home/{alice}/../{bob}/x", f"home/{bob}/x"])
    assert s3.get_object(Bucket=bucket, Key=f"home/{alice}/slashes")["Body"].read() == b"encoded slashes"
    assert s3.get_object(Bucket=bucket, Key=f"home/{alice}/../{bob}/x")["Body"].read() == b"encoded dots"
    assert s3.get_object(Bucket=bucket, Key=f"home/{bob}/x")["Body"].read() == b"bob's"
    # Read back through the encoded path: the same object.
    status, body = s3_raw(server, "GET", f"/{bucket}/home%2F{alice}%2Fslashes", key_id, secret,
                          signed_path=f"/{bucket}/home/{alice}/slashes")
    assert (status, body) == (200, b"encoded slashes")

    # bob's key, encoded, is bob's key for the policy: refused, and the audit names the decoded key.
    for wire, signed in ((f"/{bucket}/home%2F{bob}%2Fx", f"/{bucket}/home/{bob}/x"),
                         (f"/{bucket}/home%2F%2F{alice}%2Fx", f"/{bucket}/home//{alice}/x")):
        status, body = s3_raw(server, "PUT", wire, key_id, secret, signed_path=signed, body=b"overwrite")
        assert (status, error_of(body)) == (403, "AccessDenied"), (wire, body)
    assert s3.get_object(Bucket=bucket, Key=f"home/{bob}/x")["Body"].read() == b"bob's"
    assert f"home//{alice}/x" not in keys(s3, bucket)
    arn = f"arn:aws:s3:::{bucket}"
    assert denials(server, alice) == [f"s3:PutObject on {arn}/home/{bob}/x: no policy allows it",
                                      f"s3:PutObject on {arn}/home//{alice}/x: no policy allows it"]


def test_presigned_urls_of_a_home_prefix(server, bucket, s3):
    alice, key_id, secret = new_user(server, home_policy(bucket))
    bob = f"b-{uuid.uuid4().hex[:10]}"
    s3.put_object(Bucket=bucket, Key=f"home/{bob}/x", Body=b"bob's")
    mine = client(server, "s3", key_id, secret)
    mine.put_object(Bucket=bucket, Key=f"home/{alice}/notes.txt", Body=b"alice's notes")
    mine.put_object(Bucket=bucket, Key=f"home/{alice}/../{bob}/x", Body=b"alice's dots")

    def presigned(key):
        url = mine.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    assert send_verbatim(server, "GET", presigned(f"home/{alice}/notes.txt")) == (200, b"alice's notes")
    # The dotted key's URL reaches the dotted key (sent as is), not bob's object.
    assert send_verbatim(server, "GET", presigned(f"home/{alice}/../{bob}/x")) == (200, b"alice's dots")
    status, body = send_verbatim(server, "GET", presigned(f"home/{bob}/x"))
    assert (status, error_of(body)) == (403, "AccessDenied"), body
    assert denials(server, alice) == [f"s3:GetObject on arn:aws:s3:::{bucket}/home/{bob}/x: no policy allows it"]


def test_a_credential_smuggled_before_the_algorithm_is_refused(server):
    """The envelope reads the credential where s3s does (after `AWS4-HMAC-SHA256 `): a well-scoped
    `Credential=` put where the algorithm goes cannot pass a request signed for STS or another
    region (review finding)."""
    for service, region in (("sts", REGION), ("s3", "eu-west-1")):
        request = AWSRequest(method="GET", url=f"{server.endpoint}/", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, region).add_auth(request)
        headers = dict(request.headers)
        assert requests.get(f"{server.endpoint}/", headers=headers, timeout=10).status_code == 400
        date = headers["X-Amz-Date"][:8]
        headers["Authorization"] = headers["Authorization"].replace(
            "AWS4-HMAC-SHA256 ", f"Credential={ACCESS_KEY}/{date}/{REGION}/s3/aws4_request ", 1)
        smuggled = requests.get(f"{server.endpoint}/", headers=headers, timeout=10)
        assert (smuggled.status_code, error_of(smuggled.content)) == (400, "AuthorizationHeaderMalformed"), smuggled.text
