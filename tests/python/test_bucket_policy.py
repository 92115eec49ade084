"""Bucket policies, public access blocks, bucket tags and unsigned access, through boto3 and the
AWS CLI, on both metadata backends; and a policy change reaching another PostgreSQL replica."""

import json
import subprocess
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import Server
from test_identity import allow, client, error_code, new_user

ACCOUNT = "000000000000"


def public_read(bucket):
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}


def aws(server, env, *args):
    """The AWS CLI against the server: (exit code, stdout, stderr)."""
    out = subprocess.run(["aws", "--endpoint-url", server.endpoint, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.returncode, out.stdout, out.stderr


def new_bucket(s3, body=b"public bytes"):
    name = f"bp-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="doc.txt", Body=body)
    return name


def open_to_public(s3, bucket):
    """Lifts the public access block and puts a public-read policy."""
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read(bucket)))


def unsigned_get(server, bucket, key="doc.txt"):
    return requests.get(f"{server.endpoint}/{bucket}/{key}", timeout=10)


def test_a_malformed_policy_is_refused_naming_the_problem_and_where(server, s3, tmp_path):
    bucket = new_bucket(s3)
    env = server.cli_env(tmp_path / "home")
    policy = public_read(bucket)
    policy["Statement"][0]["Effect"] = "Permit"
    code, _, err = aws(server, env, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", json.dumps(policy))
    assert code != 0
    assert "MalformedPolicy" in err and "Statement[0].Effect" in err, err
    policy = public_read(bucket)
    policy["Statement"][0]["Resource"] = "arn:aws:s3:::someone-elses-bucket/*"
    code, _, err = aws(server, env, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", json.dumps(policy))
    assert code != 0 and "invalid resource" in err and "Statement[0].Resource" in err, err
    assert error_code(lambda: s3.get_bucket_policy(Bucket=bucket)) == "NoSuchBucketPolicy"


def test_a_public_policy_needs_the_block_lifted_then_unsigned_reads_work(server, s3, tmp_path):
    bucket = new_bucket(s3)
    other = new_bucket(s3)
    env = server.cli_env(tmp_path / "home")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    document = json.dumps(public_read(bucket))
    code, _, err = aws(server, env, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", document)
    assert code != 0 and "AccessDenied" in err, err
    assert unsigned_get(server, bucket).status_code == 403

    code, _, err = aws(server, env, "s3api", "delete-public-access-block", "--bucket", bucket)
    assert code == 0, err
    assert error_code(lambda: s3.get_public_access_block(Bucket=bucket)) == "NoSuchPublicAccessBlockConfiguration"
    code, _, err = aws(server, env, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", document)
    assert code == 0, err
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == public_read(bucket)

    resp = unsigned_get(server, bucket)
    assert resp.status_code == 200 and resp.content == b"public bytes"
    assert requests.head(f"{server.endpoint}/{bucket}/doc.txt", timeout=10).status_code == 200
    # Another bucket, a listing the policy does not grant, and unsigned writes stay refused.
    assert unsigned_get(server, other).status_code == 403
    assert requests.get(f"{server.endpoint}/{bucket}", timeout=10).status_code == 403
    assert requests.put(f"{server.endpoint}/{bucket}/new.txt", data=b"x", timeout=10).status_code == 403
    assert requests.delete(f"{server.endpoint}/{bucket}/doc.txt", timeout=10).status_code == 403
    assert s3.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"public bytes"

    s3.delete_bucket_policy(Bucket=bucket)
    assert unsigned_get(server, bucket).status_code == 403


def test_restrict_public_buckets_takes_the_public_grant_back(server, s3):
    bucket = new_bucket(s3)
    open_to_public(s3, bucket)
    assert unsigned_get(server, bucket).status_code == 200
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
                   "RestrictPublicBuckets": True}
    assert unsigned_get(server, bucket).status_code == 403
    # The policy stays, and signed callers are unaffected.
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert s3.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"public bytes"
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicPolicy": True})
    assert unsigned_get(server, bucket).status_code == 200


def test_a_bucket_policy_deny_beats_an_identity_allow_and_binds_root(server, s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret/plans.txt", Body=b"plans")
    _, key_id, secret = new_user(server, allow("s3:*", [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]))
    user = client(server, "s3", key_id, secret)
    assert user.get_object(Bucket=bucket, Key="secret/plans.txt")["Body"].read() == b"plans"
    deny = {"Version": "2012-10-17", "Statement": [{
        "Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/secret/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    assert error_code(lambda: user.get_object(Bucket=bucket, Key="secret/plans.txt")) == "AccessDenied"
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key="secret/plans.txt")) == "AccessDenied"
    assert user.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"public bytes"
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="secret/plans.txt")["Body"].read() == b"plans"


def test_a_bucket_policy_naming_a_user_grants_without_an_identity_policy(server, s3):
    bucket = new_bucket(s3)
    name, key_id, secret = new_user(server)
    user = client(server, "s3", key_id, secret)
    assert error_code(lambda: user.get_object(Bucket=bucket, Key="doc.txt")) == "AccessDenied"
    arn = client(server, "iam").get_user(UserName=name)["User"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    grant = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": arn}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(grant))
    assert user.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"public bytes"
    # Only what the policy names: no listing, no writes.
    assert error_code(lambda: user.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert error_code(lambda: user.put_object(Bucket=bucket, Key="k", Body=b"x")) == "AccessDenied"
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False


def test_abac_a_tagged_bucket_is_readable_by_users_of_its_department(server, s3):
    finance_bucket = new_bucket(s3, b"ledger")
    untagged = new_bucket(s3, b"misc")
    s3.put_bucket_tagging(Bucket=finance_bucket, Tagging={"TagSet": [{"Key": "Department", "Value": "Finance"}]})
    by_department = allow("s3:GetObject", "*", Condition={
        "StringEquals": {"aws:ResourceTag/Department": "${aws:PrincipalTag/Department}"}})
    _, key_id, secret = new_user(server, by_department, tags=[("Department", "Finance")])
    finance = client(server, "s3", key_id, secret)
    _, key_id, secret = new_user(server, by_department, tags=[("Department", "Sales")])
    sales = client(server, "s3", key_id, secret)
    assert finance.get_object(Bucket=finance_bucket, Key="doc.txt")["Body"].read() == b"ledger"
    assert error_code(lambda: sales.get_object(Bucket=finance_bucket, Key="doc.txt")) == "AccessDenied"
    assert error_code(lambda: finance.get_object(Bucket=untagged, Key="doc.txt")) == "AccessDenied"
    # Retagging the bucket moves the access.
    s3.put_bucket_tagging(Bucket=finance_bucket, Tagging={"TagSet": [{"Key": "Department", "Value": "Sales"}]})
    assert sales.get_object(Bucket=finance_bucket, Key="doc.txt")["Body"].read() == b"ledger"
    assert error_code(lambda: finance.get_object(Bucket=finance_bucket, Key="doc.txt")) == "AccessDenied"


def test_policy_status_says_whether_the_policy_is_public(server, s3):
    bucket = new_bucket(s3)
    assert error_code(lambda: s3.get_bucket_policy_status(Bucket=bucket)) == "NoSuchBucketPolicy"
    s3.delete_public_access_block(Bucket=bucket)
    narrowed = public_read(bucket)
    narrowed["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(narrowed))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    # Anonymous callers from elsewhere get nothing from it.
    assert unsigned_get(server, bucket).status_code == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read(bucket)))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True


def test_bucket_tagging_round_trip(server, s3, tmp_path):
    bucket = new_bucket(s3)
    assert error_code(lambda: s3.get_bucket_tagging(Bucket=bucket)) == "NoSuchTagSet"
    tags = [{"Key": "Department", "Value": "Finance"}, {"Key": "cost-centre", "Value": "4711"}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    env = server.cli_env(tmp_path / "home")
    code, out, err = aws(server, env, "s3api", "get-bucket-tagging", "--bucket", bucket)
    assert code == 0 and json.loads(out)["TagSet"] == tags, err
    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert error_code(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": too_many})) == "InvalidTag"
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    code, _, err = aws(server, env, "s3api", "delete-bucket-tagging", "--bucket", bucket)
    assert code == 0, err
    assert error_code(lambda: s3.get_bucket_tagging(Bucket=bucket)) == "NoSuchTagSet"
    assert error_code(lambda: s3.get_bucket_tagging(Bucket=f"missing-{uuid.uuid4().hex[:8]}")) == "NoSuchBucket"


def test_settings_go_with_the_bucket(server, s3):
    bucket = new_bucket(s3)
    open_to_public(s3, bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    s3.delete_object(Bucket=bucket, Key="doc.txt")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"new")
    assert error_code(lambda: s3.get_bucket_policy(Bucket=bucket)) == "NoSuchBucketPolicy"
    assert error_code(lambda: s3.get_bucket_tagging(Bucket=bucket)) == "NoSuchTagSet"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert unsigned_get(server, bucket).status_code == 403


def test_block_public_access_false_creates_buckets_without_a_block(tmp_path):
    srv = Server(tmp_path / "data", config={"block_public_access": False}).start()
    try:
        s3 = srv.client()
        bucket = new_bucket(s3)
        assert error_code(lambda: s3.get_public_access_block(Bucket=bucket)) == "NoSuchPublicAccessBlockConfiguration"
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read(bucket)))
        assert unsigned_get(srv, bucket).status_code == 200
    finally:
        srv.stop()


def test_a_policy_put_through_one_replica_applies_on_the_other_within_a_second(replicas):
    first, second = replicas
    s3 = first.client()
    bucket = new_bucket(s3)
    s3.delete_public_access_block(Bucket=bucket)
    assert unsigned_get(second, bucket).status_code == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read(bucket)))
    changed = time.monotonic()
    while unsigned_get(second, bucket).status_code != 200:
        assert time.monotonic() - changed < 1.0, "the other replica still refuses after 1 s"
        time.sleep(0.02)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    changed = time.monotonic()
    while unsigned_get(second, bucket).status_code != 403:
        assert time.monotonic() - changed < 1.0, "the other replica still grants after 1 s"
        time.sleep(0.02)


@pytest.mark.parametrize("condition", [
    {"Null": {"aws:userid": "true"}},
    {"StringNotEquals": {"aws:PrincipalAccount": "999999999999"}},
    {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
    {"NotIpAddress": {"aws:SourceIp": "10.9.9.9/32"}},
    {"StringLikeIfExists": {"aws:PrincipalArn": "arn:aws:iam::000000000000:user/x"}},
    {"StringLike": {"aws:PrincipalArn": "*"}},
])
def test_a_grant_to_everyone_is_public_unless_a_condition_fixes_who(server, s3, condition):
    """Review finding: conditions that merely mention a caller key used to make a policy private."""
    bucket = new_bucket(s3, b"top secret")
    policy = public_read(bucket)
    policy["Statement"][0]["Condition"] = condition
    assert error_code(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))) == "AccessDenied"
    assert unsigned_get(server, bucket).status_code == 403


def test_restrict_public_buckets_shuts_out_anonymous_callers_whatever_the_policy(server, s3):
    bucket = new_bucket(s3)
    private = public_read(bucket)
    private["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(private))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    assert unsigned_get(server, bucket).status_code == 200, "the policy grants callers from loopback"
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    assert unsigned_get(server, bucket).status_code == 403


def test_share_links_obey_the_bucket_policy(server, s3):
    """Review finding: minting and redemption ignored a bucket policy's Deny on the creator."""
    from test_identity import signed_api
    bucket = new_bucket(s3, b"top secret")
    s3.put_object(Bucket=bucket, Key="later.txt", Body=b"later")
    name, key_id, secret = new_user(server, allow(["s3:GetObject", "latchkey:CreateShare"], f"arn:aws:s3:::{bucket}/*"))
    made = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "later.txt"}, key_id, secret)
    assert made.status_code == 201, made.text
    deny = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{name}"}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    assert signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "doc.txt"}, key_id, secret).status_code \
        == 403
    assert requests.get(made.json()["api_url"], timeout=10).status_code == 403
