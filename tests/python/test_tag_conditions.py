"""Tag conditions where the tags come from somewhere other than the request's own object: the
keys of DeleteObjects, the source of a copy, what a share link reads; headers that an operation
does not store; tag keys that differ only in case. Each case was a way around a Deny that a
reviewer found; each asserts the Deny holds."""

import pytest
import requests

from test_identity import client, error_code, new_user, signed_api, signed_request


def allow_and_deny(bucket, actions, deny_action, condition):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Action": deny_action, "Resource": f"arn:aws:s3:::{bucket}/*", "Condition": condition}]}


def barred_from_secrets(server, bucket, actions):
    """A user allowed `actions` on the bucket's objects but denied s3:GetObject on those tagged
    classification=secret: (key id, secret)."""
    _, key_id, secret = new_user(server, allow_and_deny(
        bucket, actions, "s3:GetObject", {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}))
    return key_id, secret


@pytest.mark.parametrize("condition", [
    {"StringEquals": {"s3:ExistingObjectTag/retention": "keep"}},
    {"StringEquals": {"aws:ResourceTag/env": "prod"}},
])
def test_a_delete_deny_on_tags_holds_for_each_key_of_delete_objects(server, bucket, s3, condition):
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]})
    s3.put_object(Bucket=bucket, Key="ledger", Body=b"x", Tagging="retention=keep")
    _, key_id, secret = new_user(server, allow_and_deny(bucket, "s3:DeleteObject", "s3:DeleteObject", condition))
    user_s3 = client(server, "s3", key_id, secret)
    assert error_code(lambda: user_s3.delete_object(Bucket=bucket, Key="ledger")) == "AccessDenied"
    out = user_s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ledger"}]})
    assert [e["Code"] for e in out.get("Errors", [])] == ["AccessDenied"], out
    assert s3.get_object(Bucket=bucket, Key="ledger")["Body"].read() == b"x"


def test_a_copy_source_is_judged_on_its_own_tags(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"secret rows", Tagging="classification=secret")
    s3.put_object(Bucket=bucket, Key="menu.txt", Body=b"soup", Tagging="classification=public")
    key_id, secret = barred_from_secrets(server, bucket, ["s3:GetObject", "s3:PutObject"])
    user_s3 = client(server, "s3", key_id, secret)
    assert error_code(lambda: user_s3.get_object(Bucket=bucket, Key="payroll.csv")) == "AccessDenied"
    copy = lambda source: user_s3.copy_object(  # noqa: E731
        Bucket=bucket, Key="mine.csv", CopySource={"Bucket": bucket, "Key": source},
        TaggingDirective="REPLACE", Tagging="classification=public")
    assert error_code(lambda: copy("payroll.csv")) == "AccessDenied"
    assert error_code(lambda: s3.head_object(Bucket=bucket, Key="mine.csv")) == "404"
    copy("menu.txt")
    assert user_s3.get_object(Bucket=bucket, Key="mine.csv")["Body"].read() == b"soup"


def test_an_object_tag_deny_stops_minting_a_link_and_using_one(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"secret rows", Tagging="classification=secret")
    s3.put_object(Bucket=bucket, Key="plan.txt", Body=b"plan", Tagging="classification=internal")
    key_id, secret = barred_from_secrets(server, bucket, ["s3:GetObject", "latchkey:CreateShare"])
    assert signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "payroll.csv"}, key_id, secret) \
        .status_code == 403
    made = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "plan.txt", "max_uses": 2},
                      key_id, secret)
    assert made.status_code == 201, made.text
    assert requests.get(made.json()["api_url"], timeout=10).content == b"plan"
    # Retagged secret after the link was made: the link stops, as the creator's own GET would.
    s3.put_object_tagging(Bucket=bucket, Key="plan.txt",
                          Tagging={"TagSet": [{"Key": "classification", "Value": "secret"}]})
    assert requests.get(made.json()["api_url"], timeout=10).status_code == 403


def tagging_policy(bucket, action):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Action": action, "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/classification": ["public", "internal"]}}}]}


def smuggle_tagging_header(user_s3, operation, value):
    """Adds an x-amz-tagging header (signed) to every `operation` request of `user_s3`."""
    def add(request, **_):
        request.headers["x-amz-tagging"] = value
    user_s3.meta.events.register(f"before-sign.s3.{operation}", add)


def test_a_tagging_header_the_operation_does_not_store_meets_no_condition(server, bucket, s3):
    """PutObjectTagging stores its body's tags and CopyObject without REPLACE the source's: an
    x-amz-tagging header on them is not what is stored, so it is not what policies judge."""
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"d", Tagging="classification=secret")
    _, key_id, secret = new_user(server, tagging_policy(bucket, ["s3:PutObjectTagging", "s3:PutObject"]))
    user_s3 = client(server, "s3", key_id, secret)
    smuggle_tagging_header(user_s3, "PutObjectTagging", "classification=public")
    assert error_code(lambda: user_s3.put_object_tagging(
        Bucket=bucket, Key="doc.txt", Tagging={"TagSet": [{"Key": "owner", "Value": "me"}]})) == "AccessDenied"
    assert s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"] == \
        [{"Key": "classification", "Value": "secret"}]
    smuggle_tagging_header(user_s3, "CopyObject", "classification=public")
    assert error_code(lambda: user_s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "doc.txt"})) == "AccessDenied"
    # With REPLACE the header is what is stored, and it is judged.
    client(server, "s3", key_id, secret).copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "doc.txt"},
                        TaggingDirective="REPLACE", Tagging="classification=public")
    assert s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"] == [{"Key": "classification", "Value": "public"}]


def test_tag_keys_that_differ_only_in_case_are_refused(server, bucket, s3):
    """S3 would store both; a policy compares keys without case and would see one value only."""
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"d", Tagging="classification=secret")
    _, key_id, secret = new_user(server, tagging_policy(bucket, ["s3:PutObjectTagging", "s3:PutObject"]))
    user_s3 = client(server, "s3", key_id, secret)
    twins = [{"Key": "classification", "Value": "secret"}, {"Key": "Classification", "Value": "public"}]
    assert error_code(lambda: user_s3.put_object_tagging(Bucket=bucket, Key="doc.txt",
                                                         Tagging={"TagSet": twins})) == "InvalidTag"
    assert error_code(lambda: user_s3.put_object(Bucket=bucket, Key="new.txt", Body=b"n",
                                                 Tagging="classification=secret&Classification=public")) == "InvalidTag"
    assert s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"] == \
        [{"Key": "classification", "Value": "secret"}]
    # IAM refuses them as AWS does.
    iam = client(server, "iam")
    assert error_code(lambda: iam.create_user(UserName="twin-tags", Tags=[
        {"Key": "Team", "Value": "a"}, {"Key": "team", "Value": "b"}])) == "InvalidInput"


def test_a_request_with_tags_in_the_url_only_is_not_put_object_tagging(server, bucket, s3):
    """`?tagging` with x-amz-tagging on a PUT is PutObjectTagging: an empty body is a malformed
    tag set, never a retagging judged on the header."""
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"d", Tagging="classification=secret")
    _, key_id, secret = new_user(server, tagging_policy(bucket, "s3:PutObjectTagging"))
    resp = signed_request(server, "PUT", f"/{bucket}/doc.txt?tagging", key_id, secret,
                          headers={"x-amz-tagging": "classification=public"})
    assert (resp.status_code, "<Code>MissingRequestBodyError</Code>" in resp.text) == (400, True), resp.text
    assert s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"] == \
        [{"Key": "classification", "Value": "secret"}]


def test_a_version_is_judged_on_its_own_tags_not_the_current_ones(server, bucket, s3):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    secret_version = s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"secret rows",
                                   Tagging="classification=secret")["VersionId"]
    s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"nothing here", Tagging="classification=public")
    _, key_id, secret = new_user(server, allow_and_deny(
        bucket, ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], ["s3:GetObject", "s3:GetObjectVersion"],
        {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}))
    user_s3 = client(server, "s3", key_id, secret)
    assert user_s3.get_object(Bucket=bucket, Key="payroll.csv")["Body"].read() == b"nothing here"
    read_old = lambda: user_s3.get_object(Bucket=bucket, Key="payroll.csv", VersionId=secret_version)  # noqa: E731
    assert error_code(read_old) == "AccessDenied"
    assert error_code(lambda: user_s3.head_object(Bucket=bucket, Key="payroll.csv", VersionId=secret_version)) == "403"
    copy_old = lambda: user_s3.copy_object(  # noqa: E731
        Bucket=bucket, Key="mine.csv", CopySource={"Bucket": bucket, "Key": "payroll.csv", "VersionId": secret_version})
    assert error_code(copy_old) == "AccessDenied"
    # The version named in a spelling the operation would not read (encoded, another case,
    # repeated) never serves the denied bytes: what is judged is what is served.
    for query in [f"versionI%64={secret_version}", f"VersionId={secret_version}",
                  f"versionId={secret_version}&versionId={secret_version}", f"versionId=&versionId={secret_version}"]:
        resp = signed_request(server, "GET", f"/{bucket}/payroll.csv?{query}", key_id, secret)
        assert b"secret rows" not in resp.content, query
    # With the key deleted (a marker on top), the old version is still judged on its own tags.
    s3.delete_object(Bucket=bucket, Key="payroll.csv")
    assert error_code(read_old) == "AccessDenied"
