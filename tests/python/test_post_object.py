"""PostObject: browser form uploads (`POST /BUCKET`, multipart/form-data) signed with boto3's
`generate_presigned_post` (SigV4 and SigV2), sent with requests, on both metadata backends:
`${filename}`, policy conditions and expiry, `content-length-range`, the caller's permissions,
anonymous forms under a bucket policy, the success answers; nothing is stored from a refused form."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import BIN, REGION, audit_rows
from test_identity import client, new_user


def signer(server, key_id=None, secret=None, signature_version="s3v4"):
    kwargs = {} if key_id is None else {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    base = server.client(signature_version=signature_version)
    if not kwargs:
        return base
    return boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION, **kwargs,
                        config=Config(s3={"addressing_style": "path"}, signature_version=signature_version))


def post(form, files=None, data=None):
    fields = dict(form["fields"], **(data or {}))
    return requests.post(form["url"], data=fields, files=files or {"file": ("report.txt", b"form bytes")},
                         timeout=60, allow_redirects=False)


def code(resp):
    assert resp.headers.get("Content-Type", "").startswith("application/xml"), resp.text
    return resp.text.split("<Code>")[1].split("</Code>")[0]


def absent(s3, bucket, key):
    return "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=key)


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_a_signed_form_uploads_with_the_files_name(server, s3, bucket, signature_version):
    form = signer(server, signature_version=signature_version).generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"Content-Type": "text/csv", "x-amz-meta-origin": "browser", "success_action_status": "201"},
        Conditions=[["starts-with", "$key", "uploads/"], {"Content-Type": "text/csv"},
                    {"x-amz-meta-origin": "browser"}, {"success_action_status": "201"},
                    ["content-length-range", 1, 1024]],
        ExpiresIn=300)
    assert form["url"] == f"{server.endpoint}/{bucket}"
    content = b"a,b\n1,2\n"
    resp = post(form, files={"file": ("C:\\Users\\me\\ledger.csv", content)})
    assert resp.status_code == 201, resp.text
    digest = hashlib.md5(content).hexdigest()
    assert "<Key>uploads/ledger.csv</Key>" in resp.text and f"<Bucket>{bucket}</Bucket>" in resp.text
    # An absolute URL, as S3 answers: this server's, where the object is read.
    assert f"<Location>{server.endpoint}/{bucket}/uploads/ledger.csv</Location>" in resp.text
    assert f"<ETag>&quot;{digest}&quot;</ETag>" in resp.text
    assert resp.headers["ETag"] == f'"{digest}"'
    got = s3.get_object(Bucket=bucket, Key="uploads/ledger.csv")
    assert got["Body"].read() == content
    assert got["ContentType"] == "text/csv" and got["Metadata"] == {"origin": "browser"}


def test_the_default_answer_a_redirect_and_a_version_id(server, s3, bucket):
    form = s3.generate_presigned_post(bucket, "plain.txt", ExpiresIn=300)
    resp = post(form)
    assert resp.status_code == 204 and resp.content == b""
    assert s3.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == b"form bytes"

    form = s3.generate_presigned_post(bucket, "redirected.txt", Fields={"success_action_redirect": "https://app.example/done?x=1"},
                                      Conditions=[{"success_action_redirect": "https://app.example/done?x=1"}],
                                      ExpiresIn=300)
    resp = post(form)
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(f"https://app.example/done?x=1&bucket={bucket}&key=redirected.txt&etag=")

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    resp = post(s3.generate_presigned_post(bucket, "plain.txt", ExpiresIn=300))
    assert resp.status_code == 204
    version = resp.headers["x-amz-version-id"]
    assert s3.head_object(Bucket=bucket, Key="plain.txt")["VersionId"] == version


def test_the_policy_is_what_the_form_may_do(server, s3, bucket):
    conditions = [["starts-with", "$key", "in/"], ["content-length-range", 5, 20]]
    form = s3.generate_presigned_post(bucket, "in/${filename}", Conditions=conditions, ExpiresIn=300)
    # The key outside what the policy allows.
    resp = post(form, data={"key": "out/x"})
    assert resp.status_code == 403 and code(resp) == "AccessDenied"
    # A field the policy does not name.
    resp = post(form, data={"x-amz-meta-extra": "1"})
    assert resp.status_code == 403 and "Extra input fields: x-amz-meta-extra" in resp.text
    # Outside content-length-range, both ways: nothing is stored.
    resp = post(form, files={"file": ("big.bin", b"x" * 21)})
    assert resp.status_code == 400 and code(resp) == "EntityTooLarge"
    resp = post(form, files={"file": ("small.bin", b"x" * 4)})
    assert resp.status_code == 400 and code(resp) == "EntityTooSmall"
    assert absent(s3, bucket, "in/")
    assert post(form, files={"file": ("ok.bin", b"x" * 5)}).status_code == 204
    assert s3.get_object(Bucket=bucket, Key="in/ok.bin")["ContentLength"] == 5

    # A policy changed after signing, or signed with another secret.
    tampered = json.loads(base64.b64decode(form["fields"]["policy"]))
    tampered["conditions"] = [c for c in tampered["conditions"] if c != ["content-length-range", 5, 20]]
    resp = post(form, data={"policy": base64.b64encode(json.dumps(tampered).encode()).decode()},
                files={"file": ("huge.bin", b"x" * 100)})
    assert resp.status_code == 403 and code(resp) == "SignatureDoesNotMatch"
    wrong = signer(server, server.client()._request_signer._credentials.access_key, "not-the-secret")
    resp = post(wrong.generate_presigned_post(bucket, "in/w", ExpiresIn=300))
    assert resp.status_code == 403 and code(resp) == "SignatureDoesNotMatch"
    unknown = signer(server, "AKIAUNKNOWNUNKNOWN00", "secret")
    resp = post(unknown.generate_presigned_post(bucket, "in/u", ExpiresIn=300))
    assert resp.status_code == 403 and code(resp) == "InvalidAccessKeyId"

    expired = s3.generate_presigned_post(bucket, "in/late", ExpiresIn=1)
    time.sleep(2)
    resp = post(expired)
    assert resp.status_code == 403 and "Policy expired" in resp.text
    assert absent(s3, bucket, "in/w") and absent(s3, bucket, "in/u") and absent(s3, bucket, "in/late")
    assert absent(s3, bucket, "in/huge.bin")


def test_a_bucket_spelled_with_escapes_is_the_same_bucket(server, s3, bucket):
    form = s3.generate_presigned_post(bucket, "escaped", ExpiresIn=300)
    spelled = "".join(f"%{ord(c):02X}" if i % 2 == 0 else c for i, c in enumerate(bucket))
    resp = post({"url": f"{server.endpoint}/{spelled}", "fields": form["fields"]})
    assert resp.status_code == 204, resp.text
    assert s3.get_object(Bucket=bucket, Key="escaped")["Body"].read() == b"form bytes"
    # `//bucket` is not a bucket's path: not a form target, nothing stored.
    resp = post({"url": f"{server.endpoint}//{bucket}", "fields": {**form["fields"], "key": "doubled"}})
    assert resp.status_code == 405 and code(resp) == "MethodNotAllowed", resp.text
    assert absent(s3, bucket, "doubled")


def test_malformed_forms_get_clear_errors(server, s3, bucket):
    form = s3.generate_presigned_post(bucket, "k", ExpiresIn=300)
    resp = requests.post(form["url"], data=form["fields"], timeout=30)  # urlencoded, no file
    assert resp.status_code >= 400
    resp = requests.post(form["url"], files={**{k: (None, v) for k, v in form["fields"].items()}}, timeout=30)
    assert resp.status_code == 400 and "exactly one file" in resp.text
    resp = post(form, data={"x-ignore-padding": "p" * 30_000})
    assert resp.status_code == 400 and code(resp) == "MaxPostPreDataLengthExceededError"
    # A part header that never ends is not buffered whole.
    endless = b"--xyz\r\nContent-Disposition: form-data; name=\"" + b"a" * (3 * 1024 * 1024)
    resp = requests.post(form["url"], data=endless, timeout=30,
                         headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert resp.status_code == 400 and code(resp) == "MaxPostPreDataLengthExceededError"
    resp = post(form, data={"tagging": "<Tagging/>"})
    assert resp.status_code == 501
    resp = requests.post(f"{form['url']}/some-key", data=form["fields"], files={"file": ("f", b"x")}, timeout=30)
    assert resp.status_code == 405
    resp = requests.post(form["url"], data=b"--nope\r\n", timeout=30,
                         headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert resp.status_code == 400 and code(resp) == "MalformedPOSTRequest"
    assert absent(s3, bucket, "k")


def test_the_signer_needs_put_object_on_the_key(server, s3, bucket):
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/mine/*"}]})
    user = signer(server, key_id, secret)
    deadline = time.monotonic() + 10
    while (resp := post(user.generate_presigned_post(bucket, "mine/${filename}", ExpiresIn=300))).status_code != 204:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.2)
    assert s3.get_object(Bucket=bucket, Key="mine/report.txt")["Body"].read() == b"form bytes"
    resp = post(user.generate_presigned_post(bucket, "theirs/${filename}", ExpiresIn=300))
    assert resp.status_code == 403 and code(resp) == "AccessDenied"
    assert absent(s3, bucket, "theirs/")
    # Temporary credentials sign with their session token in the form.
    sts = client(server, "sts", key_id, secret)
    creds = sts.get_session_token()["Credentials"]
    temporary = boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION,
                             aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], config=Config(s3={"addressing_style": "path"}))
    form = temporary.generate_presigned_post(bucket, "mine/session.txt", ExpiresIn=300)
    assert "x-amz-security-token" in form["fields"]
    assert post(form).status_code == 204
    form["fields"]["x-amz-security-token"] = "forged"
    assert post(form).status_code in (400, 403)


def test_anonymous_forms_need_a_bucket_policy(server, s3, bucket):
    form = {"url": f"{server.endpoint}/{bucket}", "fields": {"key": "drop/${filename}"}}
    resp = post(form)
    assert resp.status_code == 403 and code(resp) == "AccessDenied"
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/drop/*"}]}))
    assert post(form).status_code == 204
    assert s3.get_object(Bucket=bucket, Key="drop/report.txt")["Body"].read() == b"form bytes"
    resp = post({"url": form["url"], "fields": {"key": "elsewhere/x"}})
    assert resp.status_code == 403
    assert absent(s3, bucket, "elsewhere/")


def test_a_large_file_streams_through(server, s3, bucket):
    body = os.urandom(24 * 1024 * 1024 + 7)
    form = s3.generate_presigned_post(bucket, "big/${filename}", ExpiresIn=300)
    resp = post(form, files={"file": ("blob.bin", body)})
    assert resp.status_code == 204, resp.text
    assert resp.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="big/blob.bin")["Body"].read() == body


def test_refused_forms_are_audited_with_their_principal(server, s3, bucket):
    name, key_id, secret = new_user(server)
    key = f"denied-{uuid.uuid4().hex}"
    resp = post(signer(server, key_id, secret).generate_presigned_post(bucket, key, ExpiresIn=300))
    assert resp.status_code == 403
    denied = [row for row in audit_rows(server, "policy.denied") if key in (row["reason"] or "")]
    assert len(denied) == 1, denied
    assert denied[0]["principal"].endswith(f":user/{name}")
    assert denied[0]["reason"].startswith(f"s3:PutObject on arn:aws:s3:::{bucket}/{key}")


def test_what_could_not_be_served_is_not_stored(server, s3, bucket):
    conditions = [["starts-with", "$Content-Type", ""], ["starts-with", "$x-amz-meta-a b", ""],
                  ["starts-with", "$x-amz-meta-note", ""], ["starts-with", "$success_action_redirect", ""]]
    form = s3.generate_presigned_post(bucket, "odd", Conditions=conditions, ExpiresIn=300)
    for field in ({"Content-Type": "text/html\r\nX-Evil: 1"}, {"x-amz-meta-note": "a\x01b"},
                  {"x-amz-meta-a b": "v"}, {"success_action_redirect": "https://app.example/\r\nX-Evil: 1"}):
        resp = post(form, data=field)
        assert resp.status_code == 400 and code(resp) == "InvalidArgument", (field, resp.text)
    assert absent(s3, bucket, "odd")
    # Non-ASCII metadata is stored and served as AWS serves it.
    resp = post(form, data={"x-amz-meta-note": "café"})
    assert resp.status_code == 204, resp.text
    assert s3.head_object(Bucket=bucket, Key="odd")["Metadata"]["note"] in ("café", "=?UTF-8?B?Y2Fmw6k=?=")


def test_every_length_range_holds_and_a_policy_lives_no_longer_than_a_presigned_url(server, s3, bucket):
    form = s3.generate_presigned_post(bucket, "ranged", ExpiresIn=300,
                                      Conditions=[["content-length-range", 0, 100], ["content-length-range", 0, 3]])
    resp = post(form, files={"file": ("f", b"x" * 50)})
    assert resp.status_code == 400 and code(resp) == "EntityTooLarge"
    assert post(form, files={"file": ("f", b"xyz")}).status_code == 204
    # Eight days: longer than max_presigned_expiry_secs (seven days) allows.
    resp = post(s3.generate_presigned_post(bucket, "long-lived", ExpiresIn=8 * 86400))
    assert resp.status_code == 403 and "at most 604800 seconds" in resp.text
    assert absent(s3, bucket, "long-lived")


def test_a_revoked_signer_s_forms_are_refused_and_logged_as_forms(server, s3, bucket, tmp_path):
    name, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    form = signer(server, key_id, secret).generate_presigned_post(bucket, "revoked/${filename}", ExpiresIn=600)
    deadline = time.monotonic() + 10
    while (resp := post(form)).status_code != 204:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.2)
    line = next(json.loads(text) for text in reversed(server.log_text().splitlines())
                if text.startswith("{") and '"PostObject"' in text and key_id in text)
    assert (line["auth"], line["access_key_id"], line["key"]) == ("form", key_id, "revoked/report.txt")
    assert line["principal"].endswith(f":user/{name}")

    time.sleep(1.1)  # --before is to the second; the form was signed before it
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = subprocess.run([BIN, "presign", "revoke", "--signed-by", key_id, "--before", before,
                          "--endpoint-url", server.endpoint], env=server.cli_env(tmp_path / "home"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    resp = post(form, files={"file": ("again.txt", b"after revocation")})
    assert resp.status_code == 403 and code(resp) == "AccessDenied"
    assert absent(s3, bucket, "revoked/again.txt")
    refusals = [row for row in audit_rows(server, "presigned.denied") if f"POST /{bucket} (form)" in (row["reason"] or "")]
    assert len(refusals) == 1 and key_id in refusals[0]["reason"]
    # A form signed after the revocation works.
    fresh = signer(server, key_id, secret).generate_presigned_post(bucket, "revoked/${filename}", ExpiresIn=600)
    assert post(fresh, files={"file": ("fresh.txt", b"new")}).status_code == 204


def signed_form(bucket, key_id, secret, conditions, fields, expires_in=600):
    """A SigV4 POST form with its own policy (boto3 always pins x-amz-date; this one need not)."""
    now = time.gmtime()
    day = time.strftime("%Y%m%d", now)
    credential = f"{key_id}/{day}/{REGION}/s3/aws4_request"
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
    policy = base64.b64encode(json.dumps({"expiration": expiration, "conditions": [
        {"bucket": bucket}, {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": credential},
        *conditions]}).encode()).decode()
    key = f"AWS4{secret}".encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return {"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "policy": policy,
            "x-amz-signature": hmac.new(key, policy.encode(), hashlib.sha256).hexdigest(), **fields}


def test_a_date_the_policy_leaves_open_does_not_escape_a_revocation(server, s3, bucket, tmp_path):
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    fields = signed_form(bucket, key_id, secret, [["starts-with", "$key", "open/"], ["starts-with", "$x-amz-date", ""]],
                         {"key": "open/${filename}", "x-amz-date": amz})
    url = f"{server.endpoint}/{bucket}"
    deadline = time.monotonic() + 10
    while (resp := requests.post(url, data=fields, files={"file": ("a.txt", b"a")}, timeout=30)).status_code != 204:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.2)
    time.sleep(1.1)
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = subprocess.run([BIN, "presign", "revoke", "--signed-by", key_id, "--before", before,
                          "--endpoint-url", server.endpoint], env=server.cli_env(tmp_path / "home"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # The same signed policy with a later date it does not pin: still signed before the revocation.
    later = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 600))
    if later[:8] == amz[:8]:
        resp = requests.post(url, data={**fields, "x-amz-date": later}, files={"file": ("b.txt", b"b")}, timeout=30)
        assert resp.status_code == 403, resp.text
    resp = requests.post(url, data=fields, files={"file": ("c.txt", b"c")}, timeout=30)
    assert resp.status_code == 403
    assert absent(s3, bucket, "open/b.txt") and absent(s3, bucket, "open/c.txt")
