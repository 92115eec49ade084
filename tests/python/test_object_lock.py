"""Object Lock, as the S3 API reference describes it, with boto3 and the AWS CLI on both metadata
backends: buckets created with Object Lock (versioning enabled for good), default retention,
per-version retention and legal hold (Put/Get ObjectRetention, ObjectLegalHold,
ObjectLockConfiguration), COMPLIANCE that nobody (root included) may shorten or get around,
GOVERNANCE that yields only to `x-amz-bypass-governance-retention` with
`s3:BypassGovernanceRetention`, and every refusal audited with the rule that refused."""

import datetime
import json
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import audit_rows
from test_identity import client, error_code, new_user

HOUR = datetime.timedelta(hours=1)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def locked_bucket(s3, **default):
    """A new bucket with Object Lock (and a default retention, given as Mode and Days/Years)."""
    name = f"l-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default:
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": default}})
    return name


def refusal(call):
    """The S3 error code and HTTP status of a refused call."""
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]


def versions(s3, bucket, key):
    return [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])]


def test_compliance_retention_is_kept_even_against_root(server, s3):
    bucket = locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}
    until = (now() + HOUR).replace(microsecond=0)
    v1 = s3.put_object(Bucket=bucket, Key="ledger", Body=b"v1", ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="ledger")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert s3.get_object_retention(Bucket=bucket, Key="ledger", VersionId=v1)["Retention"] == {
        "Mode": "COMPLIANCE", "RetainUntilDate": until}

    # Root may not delete the version, bypass or not, nor shorten, remove or soften the retention.
    for bypass in (False, True):
        assert refusal(lambda: s3.delete_object(Bucket=bucket, Key="ledger", VersionId=v1,
                                                BypassGovernanceRetention=bypass)) == ("AccessDenied", 403)
    for retention in [{"Mode": "COMPLIANCE", "RetainUntilDate": until - HOUR / 2},
                      {"Mode": "GOVERNANCE", "RetainUntilDate": until + HOUR}, {}]:
        assert refusal(lambda: s3.put_object_retention(Bucket=bucket, Key="ledger", VersionId=v1,
                                                       Retention=retention, BypassGovernanceRetention=True)) == (
            "AccessDenied", 403), retention
    answer = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                               Delete={"Objects": [{"Key": "ledger", "VersionId": v1}]})
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    # Nor suspend versioning to get around it.
    assert refusal(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
        "Status": "Suspended"})) == ("InvalidBucketState", 409)

    # Extending is allowed; an overwrite is a new version and a delete a marker: v1 stays.
    s3.put_object_retention(Bucket=bucket, Key="ledger", VersionId=v1,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until + HOUR})
    assert s3.get_object_retention(Bucket=bucket, Key="ledger")["Retention"]["RetainUntilDate"] == until + HOUR
    s3.put_object(Bucket=bucket, Key="ledger", Body=b"v2")
    s3.delete_object(Bucket=bucket, Key="ledger")
    assert v1 in versions(s3, bucket, "ledger")
    assert s3.get_object(Bucket=bucket, Key="ledger", VersionId=v1)["Body"].read() == b"v1"
    reasons = [row["reason"] for row in audit_rows(server, event="object.locked")]
    assert any(f"s3://{bucket}/ledger version {v1}: the version is under COMPLIANCE retention" == r for r in reasons)


def test_governance_retention_yields_only_to_the_bypass_with_its_permission(server, s3):
    bucket = locked_bucket(s3, Mode="GOVERNANCE", Days=1)
    v1 = s3.put_object(Bucket=bucket, Key="draft", Body=b"d")["VersionId"]
    retention = s3.get_object_retention(Bucket=bucket, Key="draft")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert abs(retention["RetainUntilDate"] - (now() + datetime.timedelta(days=1))) < datetime.timedelta(minutes=1)

    everything_but = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, {
        "Effect": "Deny", "Action": "s3:BypassGovernanceRetention", "Resource": "*"}]}
    _, key_id, secret = new_user(server, everything_but)
    user = client(server, "s3", key_id, secret)
    for bypass in (False, True):
        assert error_code(lambda: user.delete_object(Bucket=bucket, Key="draft", VersionId=v1,
                                                     BypassGovernanceRetention=bypass)) == "AccessDenied"
    assert refusal(lambda: s3.delete_object(Bucket=bucket, Key="draft", VersionId=v1)) == ("AccessDenied", 403)
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": now() + HOUR}
    assert error_code(lambda: user.put_object_retention(Bucket=bucket, Key="draft", Retention=shorter,
                                                        BypassGovernanceRetention=True)) == "AccessDenied"
    answer = user.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                                 Delete={"Objects": [{"Key": "draft", "VersionId": v1}]})
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    assert v1 in versions(s3, bucket, "draft")
    denied = [row["reason"] for row in audit_rows(server, event="policy.denied")]
    assert any("s3:BypassGovernanceRetention" in (r or "") for r in denied)

    # A user granted the bypass shortens the retention with it, and deletes with it.
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:DeleteObjectVersion", "s3:PutObjectRetention",
                                       "s3:BypassGovernanceRetention", "s3:GetObjectRetention"],
         "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    admin = client(server, "s3", key_id, secret)
    assert error_code(lambda: admin.put_object_retention(Bucket=bucket, Key="draft", Retention=shorter)) == (
        "AccessDenied")
    admin.put_object_retention(Bucket=bucket, Key="draft", Retention=shorter, BypassGovernanceRetention=True)
    assert admin.get_object_retention(Bucket=bucket, Key="draft")["Retention"]["RetainUntilDate"] == (
        shorter["RetainUntilDate"].replace(microsecond=shorter["RetainUntilDate"].microsecond // 1000 * 1000))
    admin.delete_object(Bucket=bucket, Key="draft", VersionId=v1, BypassGovernanceRetention=True)
    assert versions(s3, bucket, "draft") == []

    # DeleteObjects with the bypass, by root.
    v2 = s3.put_object(Bucket=bucket, Key="draft2", Body=b"d")["VersionId"]
    answer = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                               Delete={"Objects": [{"Key": "draft2", "VersionId": v2}]})
    assert [d["VersionId"] for d in answer["Deleted"]] == [v2] and not answer.get("Errors")


def test_a_legal_hold_keeps_a_version_until_it_is_lifted(server, s3):
    bucket = locked_bucket(s3)
    plain = s3.put_object(Bucket=bucket, Key="plain", Body=b"p")["VersionId"]
    assert refusal(lambda: s3.get_object_legal_hold(Bucket=bucket, Key="plain")) == (
        "NoSuchObjectLockConfiguration", 404)
    assert refusal(lambda: s3.get_object_retention(Bucket=bucket, Key="plain")) == (
        "NoSuchObjectLockConfiguration", 404)
    v1 = s3.put_object(Bucket=bucket, Key="evidence", Body=b"e", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=bucket, Key="evidence")["LegalHold"] == {"Status": "ON"}
    assert s3.head_object(Bucket=bucket, Key="evidence")["ObjectLockLegalHoldStatus"] == "ON"
    assert refusal(lambda: s3.delete_object(Bucket=bucket, Key="evidence", VersionId=v1,
                                            BypassGovernanceRetention=True)) == ("AccessDenied", 403)
    s3.put_object_legal_hold(Bucket=bucket, Key="evidence", VersionId=v1, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="evidence", VersionId=v1)["LegalHold"] == {"Status": "OFF"}
    s3.delete_object(Bucket=bucket, Key="evidence", VersionId=v1)
    s3.delete_object(Bucket=bucket, Key="plain", VersionId=plain)
    assert s3.list_object_versions(Bucket=bucket).get("Versions", []) == []
    reasons = [row["reason"] for row in audit_rows(server, event="object.locked")]
    assert f"s3://{bucket}/evidence version {v1}: the version is under a legal hold" in reasons


def test_a_retention_that_ends_protects_no_longer(server, s3):
    bucket = locked_bucket(s3)
    until = now() + datetime.timedelta(seconds=2)
    v1 = s3.put_object(Bucket=bucket, Key="short", Body=b"s", ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    assert refusal(lambda: s3.delete_object(Bucket=bucket, Key="short", VersionId=v1)) == ("AccessDenied", 403)
    time.sleep(max(0.0, (until - now()).total_seconds()) + 0.3)
    s3.delete_object(Bucket=bucket, Key="short", VersionId=v1)
    assert versions(s3, bucket, "short") == []


def test_uploads_and_copies_take_the_lock_they_ask_for_or_the_default(server, s3):
    bucket = locked_bucket(s3, Mode="COMPLIANCE", Years=1)
    until = (now() + HOUR).replace(microsecond=0)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ObjectLockMode="GOVERNANCE",
                                        ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 10)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE", until, "ON")
    # A copy is a new version: the source's lock does not travel; the bucket's default applies.
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    copied = s3.get_object(Bucket=bucket, Key="copy")
    assert copied["ObjectLockMode"] == "COMPLIANCE" and "ObjectLockLegalHoldStatus" not in copied
    assert abs(copied["ObjectLockRetainUntilDate"] - (now() + datetime.timedelta(days=365))) < datetime.timedelta(
        minutes=1)
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "mp"},
                   ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)
    assert s3.head_object(Bucket=bucket, Key="copy2")["ObjectLockMode"] == "GOVERNANCE"


def test_object_lock_requests_are_refused_as_s3_refuses_them(server, s3, bucket):
    until = now() + HOUR
    # A bucket without Object Lock.
    assert refusal(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"", ObjectLockMode="GOVERNANCE",
                                         ObjectLockRetainUntilDate=until)) == ("InvalidRequest", 400)
    assert refusal(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"", ObjectLockLegalHoldStatus="ON")) == (
        "InvalidRequest", 400)
    assert refusal(lambda: s3.create_multipart_upload(Bucket=bucket, Key="k", ObjectLockLegalHoldStatus="ON")) == (
        "InvalidRequest", 400)
    s3.put_object(Bucket=bucket, Key="k", Body=b"")
    assert refusal(lambda: s3.put_object_retention(Bucket=bucket, Key="k", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": until})) == ("InvalidRequest", 400)
    assert refusal(lambda: s3.get_object_lock_configuration(Bucket=bucket)) == (
        "ObjectLockConfigurationNotFoundError", 404)
    enabled = {"ObjectLockEnabled": "Enabled"}
    assert refusal(lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=enabled)) == (
        "InvalidBucketState", 409)
    # Enabled on an existing bucket once its versioning is: then it has Object Lock for good.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=enabled)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == enabled

    # Malformed locks and configurations.
    for rule in [{"Mode": "GOVERNANCE", "Days": 1, "Years": 1}, {"Mode": "GOVERNANCE"}, {"Days": 1}]:
        assert refusal(lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            **enabled, "Rule": {"DefaultRetention": rule}}))[0] == "MalformedXML", rule
    for rule in [{"Mode": "GOVERNANCE", "Days": 0}, {"Mode": "COMPLIANCE", "Years": 101},
                 {"Mode": "COMPLIANCE", "Days": -1}]:
        assert refusal(lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            **enabled, "Rule": {"DefaultRetention": rule}})) == ("InvalidArgument", 400), rule
    assert refusal(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"", ObjectLockMode="GOVERNANCE")) == (
        "InvalidArgument", 400)
    assert refusal(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"", ObjectLockMode="COMPLIANCE",
                                         ObjectLockRetainUntilDate=now() - HOUR)) == ("InvalidArgument", 400)
    assert refusal(lambda: s3.put_object_retention(Bucket=bucket, Key="k", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": now() - HOUR})) == ("InvalidArgument", 400)
    assert refusal(lambda: s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "MAYBE"}))[0] == (
        "MalformedXML")
    # A delete marker has no lock to read or set.
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    assert refusal(lambda: s3.get_object_retention(Bucket=bucket, Key="k", VersionId=marker)) == (
        "MethodNotAllowed", 405)
    assert refusal(lambda: s3.put_object_legal_hold(Bucket=bucket, Key="k", VersionId=marker,
                                                    LegalHold={"Status": "ON"})) == ("MethodNotAllowed", 405)

    # Setting a lock on a write needs the permission to set it, as in AWS.
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    writer = client(server, "s3", key_id, secret)
    writer.put_object(Bucket=bucket, Key="w", Body=b"w")
    assert error_code(lambda: writer.put_object(Bucket=bucket, Key="w", Body=b"w", ObjectLockMode="COMPLIANCE",
                                                ObjectLockRetainUntilDate=until)) == "AccessDenied"
    assert error_code(lambda: writer.put_object(Bucket=bucket, Key="w", Body=b"w",
                                                ObjectLockLegalHoldStatus="ON")) == "AccessDenied"


def test_the_aws_cli_locks_and_cannot_delete(server, tmp_path):
    env = server.cli_env(tmp_path)
    bucket = f"cli-{uuid.uuid4().hex[:12]}"

    def aws(*args):
        return subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3api", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    assert aws("create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket").returncode == 0
    config = json.dumps({"ObjectLockEnabled": "Enabled",
                         "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    out = aws("put-object-lock-configuration", "--bucket", bucket, "--object-lock-configuration", config)
    assert out.returncode == 0, out.stderr
    (tmp_path / "f").write_bytes(b"kept")
    put = aws("put-object", "--bucket", bucket, "--key", "f", "--body", str(tmp_path / "f"))
    assert put.returncode == 0, put.stderr
    version = json.loads(put.stdout)["VersionId"]
    retention = json.loads(aws("get-object-retention", "--bucket", bucket, "--key", "f").stdout)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    refused = aws("delete-object", "--bucket", bucket, "--key", "f", "--version-id", version,
                  "--bypass-governance-retention")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr


def test_a_put_that_straddles_enabling_object_lock_commits_as_the_bucket_now_is(server, s3, bucket):
    """A PUT decides what its version is at the commit, not when it starts: one begun while the
    bucket was suspended and finished after versioning and Object Lock were enabled is a new
    version with the bucket's default retention, and the retained null version stays."""
    import http.client
    import threading
    import urllib.parse

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"N")
    url = urllib.parse.urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"},
                                                          ExpiresIn=600))
    go, answer = threading.Event(), {}

    def slow_put():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        conn.putheader("Content-Length", "2")
        conn.endheaders()
        conn.send(b"P")
        go.wait()
        conn.send(b"!")
        response = conn.getresponse()
        answer.update(status=response.status, version=response.getheader("x-amz-version-id"))
        response.read()

    writer = threading.Thread(target=slow_put)
    writer.start()
    time.sleep(0.5)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    s3.put_object_retention(Bucket=bucket, Key="k", VersionId="null",
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": now() + HOUR})
    go.set()
    writer.join()
    assert answer["status"] == 200 and answer["version"] not in (None, "null"), answer
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"N"
    assert s3.get_object_retention(Bucket=bucket, Key="k", VersionId=answer["version"])["Retention"]["Mode"] == (
        "COMPLIANCE")
    assert refusal(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId="null")) == ("AccessDenied", 403)


def test_lock_actions_on_a_version_are_judged_on_that_versions_tags(server, s3):
    """A policy's tag conditions on the Object Lock actions read the version the request names."""
    bucket = locked_bucket(s3)
    tagged = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="keep=yes", ObjectLockLegalHoldStatus="ON",
                           ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=now() + HOUR)["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Action": ["s3:PutObjectLegalHold", "s3:BypassGovernanceRetention"],
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/keep": "yes"}}}]}))
    assert refusal(lambda: s3.put_object_legal_hold(Bucket=bucket, Key="k", VersionId=tagged,
                                                    LegalHold={"Status": "OFF"}))[0] == "AccessDenied"
    answer = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                               Delete={"Objects": [{"Key": "k", "VersionId": tagged}]})
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    assert s3.get_object_legal_hold(Bucket=bucket, Key="k", VersionId=tagged)["LegalHold"] == {"Status": "ON"}


def test_a_bucket_policy_caps_the_retention_a_write_asks_for(server, s3):
    """AWS's way to cap retention: a Deny on `s3:object-lock-remaining-retention-days`."""
    bucket = locked_bucket(s3)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObjectRetention", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"NumericGreaterThan": {"s3:object-lock-remaining-retention-days": "30"}}}]}))
    ten_years = now() + datetime.timedelta(days=3650)
    assert refusal(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="COMPLIANCE",
                                         ObjectLockRetainUntilDate=ten_years))[0] == "AccessDenied"
    assert versions(s3, bucket, "k") == []
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=now() + datetime.timedelta(days=10))
    assert len(versions(s3, bucket, "k")) == 1
