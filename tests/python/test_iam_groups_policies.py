"""IAM breadth: groups and membership, customer managed policies and their versions, attachments
to users, groups and roles, permissions boundaries, UpdateUser and GetAccountSummary, through
boto3 and the AWS CLI, with their effect on S3 access checked, not only their answers."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY
from test_identity import allow, aws, client, error_code, new_user, write_profiles

ACCOUNT = "000000000000"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def objects(bucket):
    return [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def new_policy(iam, document, path="/"):
    """A managed policy: its ARN."""
    return iam.create_policy(PolicyName=unique("mp"), Path=path, PolicyDocument=json.dumps(document))["Policy"]["Arn"]


def can_put(s3, bucket, key="k"):
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", e.response
        return False


def can_get(s3, bucket, key="k"):
    try:
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", e.response
        return False


def malformed_message(call):
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    return refused.value.response["Error"]["Message"]


def test_a_group_policy_grants_its_members_until_detached(server, bucket, s3):
    iam = client(server, "iam")
    name, key_id, secret = new_user(server)
    user_s3 = client(server, "s3", key_id, secret)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    group = unique("g")
    iam.create_group(GroupName=group)
    arn = new_policy(iam, allow(["s3:GetObject", "s3:PutObject"], objects(bucket)))
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    assert not can_get(user_s3, bucket), "not a member yet"

    iam.add_user_to_group(GroupName=group, UserName=name)
    assert can_get(user_s3, bucket) and can_put(user_s3, bucket)
    attached = iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1

    iam.detach_group_policy(GroupName=group, PolicyArn=arn)
    assert not can_get(user_s3, bucket) and not can_put(user_s3, bucket)
    assert error_code(lambda: iam.detach_group_policy(GroupName=group, PolicyArn=arn)) == "NoSuchEntity"

    # Attached again, then the member leaves: the grant goes with the membership.
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    assert can_get(user_s3, bucket)
    iam.remove_user_from_group(GroupName=group, UserName=name)
    assert not can_get(user_s3, bucket)
    assert error_code(lambda: iam.remove_user_from_group(GroupName=group, UserName=name)) == "NoSuchEntity"


def test_a_deny_in_a_group_policy_beats_an_allow_in_a_user_policy(server, bucket, s3):
    iam = client(server, "iam")
    name, key_id, secret = new_user(server, allow("s3:*", "*"))
    user_s3 = client(server, "s3", key_id, secret)
    assert can_put(user_s3, bucket)
    group = unique("g")
    iam.create_group(GroupName=group)
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}
    iam.put_group_policy(GroupName=group, PolicyName="no-writes", PolicyDocument=json.dumps(deny))
    iam.add_user_to_group(GroupName=group, UserName=name)
    assert not can_put(user_s3, bucket)
    assert can_get(user_s3, bucket), "only PutObject is denied"

    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["no-writes"]
    got = iam.get_group_policy(GroupName=group, PolicyName="no-writes")
    assert got["GroupName"] == group and got["PolicyDocument"] == deny
    assert error_code(lambda: iam.get_group_policy(GroupName=group, PolicyName="other")) == "NoSuchEntity"
    message = malformed_message(lambda: iam.put_group_policy(
        GroupName=group, PolicyName="bad", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Resource": "*"}]})))
    assert "Statement[0]" in message, message

    iam.delete_group_policy(GroupName=group, PolicyName="no-writes")
    assert can_put(user_s3, bucket)
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == []
    assert error_code(lambda: iam.delete_group_policy(GroupName=group, PolicyName="no-writes")) == "NoSuchEntity"


def test_a_permissions_boundary_caps_a_users_inline_allow(server, bucket, s3):
    iam = client(server, "iam")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    name, key_id, secret = new_user(server, allow("s3:*", "*"))
    user_s3 = client(server, "s3", key_id, secret)
    boundary = new_policy(iam, allow("s3:GetObject", "*"))
    unknown = f"arn:aws:iam::{ACCOUNT}:policy/{unique('nothing')}"
    assert error_code(lambda: iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=unknown)) \
        == "NoSuchEntity"

    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)
    assert not can_put(user_s3, bucket), "the boundary allows only s3:GetObject"
    assert can_get(user_s3, bucket)
    assert iam.get_user(UserName=name)["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary}
    assert iam.get_policy(PolicyArn=boundary)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    assert error_code(lambda: iam.delete_policy(PolicyArn=boundary)) == "DeleteConflict"
    assert error_code(lambda: iam.delete_user(UserName=name)) == "DeleteConflict"

    iam.delete_user_permissions_boundary(UserName=name)
    assert can_put(user_s3, bucket)
    assert "PermissionsBoundary" not in iam.get_user(UserName=name)["User"]

    # A user created with a boundary is bounded from its first request.
    bounded = unique("u")
    iam.create_user(UserName=bounded, PermissionsBoundary=boundary)
    iam.put_user_policy(UserName=bounded, PolicyName="all", PolicyDocument=json.dumps(allow("s3:*", "*")))
    key = iam.create_access_key(UserName=bounded)["AccessKey"]
    bounded_s3 = client(server, "s3", key["AccessKeyId"], key["SecretAccessKey"])
    assert can_get(bounded_s3, bucket) and not can_put(bounded_s3, bucket)


def test_a_new_default_policy_version_changes_access(server, bucket, s3):
    iam = client(server, "iam")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    name, key_id, secret = new_user(server)
    user_s3 = client(server, "s3", key_id, secret)
    v1 = allow("s3:GetObject", objects(bucket))
    arn = new_policy(iam, v1)
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    assert can_get(user_s3, bucket) and not can_put(user_s3, bucket)

    v2 = allow(["s3:GetObject", "s3:PutObject"], objects(bucket))
    created = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(v2), SetAsDefault=True)
    assert created["PolicyVersion"]["VersionId"] == "v2" and created["PolicyVersion"]["IsDefaultVersion"]
    assert can_put(user_s3, bucket)
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    assert not can_put(user_s3, bucket)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v1"

    version = iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]
    assert version["Document"] == v2 and not version["IsDefaultVersion"]
    listed = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in listed] == [("v2", False), ("v1", True)]
    assert error_code(lambda: iam.get_policy_version(PolicyArn=arn, VersionId="v9")) == "NoSuchEntity"
    assert error_code(lambda: iam.set_default_policy_version(PolicyArn=arn, VersionId="v9")) == "NoSuchEntity"
    assert error_code(lambda: iam.delete_policy_version(PolicyArn=arn, VersionId="v1")) == "DeleteConflict"

    for _ in range(3):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(v1))
    assert error_code(lambda: iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(v1))) \
        == "LimitExceeded"
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 5

    assert error_code(lambda: iam.delete_policy(PolicyArn=arn)) == "DeleteConflict", "attached"
    assert error_code(lambda: iam.delete_user(UserName=name)) == "DeleteConflict", "has an attached policy"
    iam.detach_user_policy(UserName=name, PolicyArn=arn)
    assert not can_get(user_s3, bucket)
    assert error_code(lambda: iam.delete_policy(PolicyArn=arn)) == "DeleteConflict", "has non-default versions"
    for v in ["v2", "v3", "v4", "v5"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    assert error_code(lambda: iam.delete_policy_version(PolicyArn=arn, VersionId="v2")) == "NoSuchEntity"
    iam.delete_policy(PolicyArn=arn)
    assert error_code(lambda: iam.get_policy(PolicyArn=arn)) == "NoSuchEntity"
    assert error_code(lambda: iam.attach_user_policy(UserName=name, PolicyArn=arn)) == "NoSuchEntity"


def test_managed_policies_are_validated_listed_and_capped(server):
    iam = client(server, "iam")
    name = unique("mp")
    path = f"/{unique('team')}/"
    document = allow("s3:ListBucket", "*")
    created = iam.create_policy(PolicyName=name, Path=path, Description="lists buckets",
                                PolicyDocument=json.dumps(document))["Policy"]
    arn = f"arn:aws:iam::{ACCOUNT}:policy{path}{name}"
    assert created["Arn"] == arn and created["PolicyId"].startswith("ANPA")
    assert (created["DefaultVersionId"], created["AttachmentCount"], created["IsAttachable"]) == ("v1", 0, True)
    got = iam.get_policy(PolicyArn=arn)["Policy"]
    assert (got["PolicyName"], got["Path"], got["Description"]) == (name, path, "lists buckets")
    assert error_code(lambda: iam.create_policy(PolicyName=name.upper(), PolicyDocument=json.dumps(document))) \
        == "EntityAlreadyExists"

    message = malformed_message(lambda: iam.create_policy(PolicyName=unique("bad"), PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                                                 "Condition": {"StringEquals": "x"}}]})))
    assert "Statement[0].Condition" in message, message
    message = malformed_message(lambda: iam.create_policy(PolicyName=unique("bad"), PolicyDocument="{not json"))
    assert "line 1" in message, message
    big = allow([f"s3:GetObject{'x' * 40}{i}" for i in range(150)], "*")
    message = malformed_message(lambda: iam.create_policy(PolicyName=unique("big"), PolicyDocument=json.dumps(big)))
    assert "6144" in message, message
    assert error_code(lambda: iam.create_policy_version(PolicyArn=arn, PolicyDocument="[]")) \
        == "MalformedPolicyDocument"

    local = [p["Arn"] for p in iam.list_policies(Scope="Local", PathPrefix=path)["Policies"]]
    assert local == [arn]
    assert iam.list_policies(Scope="AWS")["Policies"] == []
    assert arn not in [p["Arn"] for p in iam.list_policies(OnlyAttached=True)["Policies"]]
    assert error_code(lambda: iam.list_policies(Scope="Elsewhere")) == "ValidationError"

    group = unique("g")
    iam.create_group(GroupName=group, Path=path)
    user, _, _ = new_user(server)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)  # attaching again changes nothing
    assert arn in [p["Arn"] for p in iam.list_policies(OnlyAttached=True)["Policies"]]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 2
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [g["GroupName"] for g in entities["PolicyGroups"]] == [group]
    assert [u["UserName"] for u in entities["PolicyUsers"]] == [user]
    only_users = iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")
    assert only_users["PolicyGroups"] == [] and len(only_users["PolicyUsers"]) == 1
    assert iam.list_entities_for_policy(PolicyArn=arn, PathPrefix=path)["PolicyUsers"] == []

    # At most ten managed policies per principal.
    others = [new_policy(iam, document) for _ in range(9)]
    for other in others:
        iam.attach_user_policy(UserName=user, PolicyArn=other)
    extra = new_policy(iam, document)
    with pytest.raises(ClientError) as refused:
        iam.attach_user_policy(UserName=user, PolicyArn=extra)
    assert refused.value.response["Error"]["Code"] == "LimitExceeded"
    assert "PoliciesPerUser" in refused.value.response["Error"]["Message"]
    assert len(iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]) == 10
    assert [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=user, PathPrefix=path)
            ["AttachedPolicies"]] == [name]
    unknown = f"arn:aws:iam::{ACCOUNT}:policy/{unique('nothing')}"
    assert error_code(lambda: iam.attach_group_policy(GroupName=group, PolicyArn=unknown)) == "NoSuchEntity"
    assert error_code(lambda: iam.get_policy(PolicyArn=unknown)) == "NoSuchEntity"
    assert error_code(lambda: iam.attach_group_policy(GroupName=unique("nogroup"), PolicyArn=arn)) == "NoSuchEntity"


def test_group_lifecycle_and_its_conflicts(server):
    iam = client(server, "iam")
    path = f"/{unique('div')}/"
    group = unique("Eng")
    created = iam.create_group(GroupName=group, Path=path)["Group"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:group{path}{group}" and created["GroupId"].startswith("AGPA")
    assert error_code(lambda: iam.create_group(GroupName=group.lower())) == "EntityAlreadyExists"
    assert error_code(lambda: iam.create_group(GroupName="bad name")) == "ValidationError"
    assert [g["GroupName"] for g in iam.list_groups(PathPrefix=path)["Groups"]] == [group]

    alice, key_id, secret = new_user(server)
    bob, _, _ = new_user(server)
    iam.add_user_to_group(GroupName=group, UserName=alice)
    iam.add_user_to_group(GroupName=group, UserName=bob)
    iam.add_user_to_group(GroupName=group, UserName=bob)  # a member already: no change
    got = iam.get_group(GroupName=group)
    assert got["Group"]["GroupName"] == group
    assert sorted(u["UserName"] for u in got["Users"]) == sorted([alice, bob])
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=alice)["Groups"]] == [group]
    assert error_code(lambda: iam.add_user_to_group(GroupName=group, UserName=unique("nobody"))) == "NoSuchEntity"
    assert error_code(lambda: iam.add_user_to_group(GroupName=unique("nogroup"), UserName=alice)) == "NoSuchEntity"

    assert error_code(lambda: iam.delete_group(GroupName=group)) == "DeleteConflict", "has members"
    assert error_code(lambda: iam.delete_user(UserName=alice)) == "DeleteConflict", "is in a group"
    iam.remove_user_from_group(GroupName=group, UserName=alice)
    iam.remove_user_from_group(GroupName=group, UserName=bob)
    assert iam.list_groups_for_user(UserName=alice)["Groups"] == []
    iam.put_group_policy(GroupName=group, PolicyName="p", PolicyDocument=json.dumps(allow("s3:GetObject", "*")))
    assert error_code(lambda: iam.delete_group(GroupName=group)) == "DeleteConflict", "has a policy"
    iam.delete_group_policy(GroupName=group, PolicyName="p")

    # A user without IAM permissions may not manage groups.
    as_alice = client(server, "iam", key_id, secret)
    assert error_code(lambda: as_alice.add_user_to_group(GroupName=group, UserName=alice)) == "AccessDenied"
    assert error_code(lambda: as_alice.create_group(GroupName=unique("g"))) == "AccessDenied"

    iam.delete_group(GroupName=group)
    assert error_code(lambda: iam.get_group(GroupName=group)) == "NoSuchEntity"
    iam.delete_access_key(UserName=alice, AccessKeyId=key_id)
    iam.delete_user(UserName=alice)


def test_update_user_renames_with_keys_groups_and_policies(server, bucket, s3):
    iam = client(server, "iam")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    old, key_id, secret = new_user(server)
    user_s3 = client(server, "s3", key_id, secret)
    group = unique("g")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="read", PolicyDocument=json.dumps(
        allow("s3:GetObject", objects(bucket))))
    iam.add_user_to_group(GroupName=group, UserName=old)
    writer = new_policy(iam, allow("s3:PutObject", objects(bucket)))
    iam.attach_user_policy(UserName=old, PolicyArn=writer)
    taken, _, _ = new_user(server)
    assert error_code(lambda: iam.update_user(UserName=old, NewUserName=taken.upper())) == "EntityAlreadyExists"

    new = unique("renamed")
    iam.update_user(UserName=old, NewUserName=new, NewPath="/moved/")
    user = iam.get_user(UserName=new)["User"]
    assert (user["UserName"], user["Path"]) == (new, "/moved/")
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/moved/{new}"
    assert error_code(lambda: iam.get_user(UserName=old)) == "NoSuchEntity"
    # Its key, its membership and its attached policy moved with it.
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=new)["AccessKeyMetadata"]] == [key_id]
    assert can_get(user_s3, bucket) and can_put(user_s3, bucket)
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [new]
    assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=new)["AttachedPolicies"]] == [writer]
    assert [u["UserName"] for u in iam.list_entities_for_policy(PolicyArn=writer)["PolicyUsers"]] == [new]

    # A change of case only, and a path alone.
    iam.update_user(UserName=new, NewUserName=new.upper())
    assert iam.get_user(UserName=new)["User"]["UserName"] == new.upper()
    iam.update_user(UserName=new, NewPath="/")
    assert iam.get_user(UserName=new)["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{new.upper()}"
    assert can_get(user_s3, bucket)
    assert error_code(lambda: iam.update_user(UserName=unique("nobody"), NewUserName=unique("x"))) \
        == "NoSuchEntity"


def test_roles_take_managed_policies_and_boundaries(server):
    iam = client(server, "iam")
    role = unique("role")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    arn = new_policy(iam, allow("s3:GetObject", "*"))
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [arn]
    assert [r["RoleName"] for r in iam.list_entities_for_policy(PolicyArn=arn)["PolicyRoles"]] == [role]
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    iam.delete_role_permissions_boundary(RoleName=role)
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 0
    assert error_code(lambda: iam.attach_role_policy(RoleName=unique("norole"), PolicyArn=arn)) == "NoSuchEntity"


def test_the_account_summary_counts_the_directory(server):
    iam = client(server, "iam")
    before = iam.get_account_summary()["SummaryMap"]
    iam.create_user(UserName=unique("u"))
    iam.create_group(GroupName=unique("g"))
    arn = new_policy(iam, allow("s3:GetObject", "*"))
    group = unique("g")
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    after = iam.get_account_summary()["SummaryMap"]
    assert after["Users"] == before["Users"] + 1
    assert after["Groups"] == before["Groups"] + 2
    assert after["Policies"] == before["Policies"] + 1
    assert after["PolicyVersionsInUse"] == before["PolicyVersionsInUse"] + 1
    assert (after["AccessKeysPerUserQuota"], after["AttachedPoliciesPerUserQuota"], after["VersionsPerPolicyQuota"]) \
        == (2, 10, 5)
    assert after["UsersQuota"] >= after["Users"] and after["PolicySizeQuota"] == 6144


def test_the_aws_cli_creates_and_attaches_a_group_policy(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"q3")
    name, key_id, secret = new_user(server)
    home = tmp_path / "home"
    write_profiles(home, {"root": (ACCESS_KEY, SECRET_KEY, None), "user": (key_id, secret, None)})
    document = tmp_path / "readers.json"
    document.write_text(json.dumps(allow(["s3:GetObject", "s3:ListBucket"], objects(bucket))))
    group, policy = unique("readers"), unique("read-reports")

    out = aws(server, home, "root", "iam", "create-policy", "--policy-name", policy,
              "--policy-document", f"file://{document}")
    assert out.returncode == 0, out.stderr
    arn = json.loads(out.stdout)["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/{policy}"
    for args in (["create-group", "--group-name", group],
                 ["add-user-to-group", "--group-name", group, "--user-name", name],
                 ["attach-group-policy", "--group-name", group, "--policy-arn", arn]):
        out = aws(server, home, "root", "iam", *args)
        assert out.returncode == 0, (args, out.stderr)
    out = aws(server, home, "root", "iam", "list-attached-group-policies", "--group-name", group)
    assert json.loads(out.stdout)["AttachedPolicies"] == [{"PolicyName": policy, "PolicyArn": arn}]
    out = aws(server, home, "root", "iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v1")
    assert json.loads(out.stdout)["PolicyVersion"]["Document"] == json.loads(document.read_text())

    copied = aws(server, home, "user", "s3", "cp", f"s3://{bucket}/report.csv", str(tmp_path / "r"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "r").read_bytes() == b"q3"
    refused = aws(server, home, "user", "s3", "cp", str(document), f"s3://{bucket}/new.json")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}))
    out = aws(server, home, "root", "iam", "create-policy", "--policy-name", unique("bad"),
              "--policy-document", f"file://{bad}")
    assert out.returncode != 0 and "MalformedPolicyDocument" in out.stderr and "Statement[0]" in out.stderr


def test_iam_listings_are_paged_with_max_items_and_markers(server, tmp_path):
    """MaxItems and Marker as IAM pages them: boto3's paginators and the AWS CLI's --max-items
    walk every listing page by page; a page that ends a listing is not truncated; a marker keeps
    its place when what it has shown is deleted; bad paging parameters get AWS's errors."""
    iam = client(server, "iam")
    path = f"/{unique('paged')}/"
    names = sorted(unique("pu") for _ in range(5))
    group = unique("pg")
    iam.create_group(GroupName=group, Path=path)
    policy = new_policy(iam, allow("s3:GetObject", "*"), path)
    for name in names:
        iam.create_user(UserName=name, Path=path, Tags=[{"Key": f"k{i}", "Value": name} for i in range(3)])
        iam.add_user_to_group(GroupName=group, UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn=policy)
    iam.attach_group_policy(GroupName=group, PolicyArn=policy)
    for version in range(3):
        iam.create_policy_version(PolicyArn=policy, PolicyDocument=json.dumps(allow("s3:ListBucket", f"arn:aws:s3:::b{version}")))

    def walk(operation, key, **params):
        pages = list(iam.get_paginator(operation).paginate(**params, PaginationConfig={"PageSize": 2}))
        assert [page["IsTruncated"] for page in pages] == [True] * (len(pages) - 1) + [False], operation
        assert all(len(page[key]) <= 2 for page in pages)
        return len(pages), [item for page in pages for item in page[key]]

    count, users = walk("list_users", "Users", PathPrefix=path)
    assert (count, [u["UserName"] for u in users]) == (3, names)
    _, members = walk("get_group", "Users", GroupName=group)
    assert [u["UserName"] for u in members] == names
    _, tags = walk("list_user_tags", "Tags", UserName=names[0])
    assert [t["Key"] for t in tags] == ["k0", "k1", "k2"]
    _, versions = walk("list_policy_versions", "Versions", PolicyArn=policy)
    assert [v["VersionId"] for v in versions] == ["v4", "v3", "v2", "v1"], "newest first, across pages"
    pages = list(iam.get_paginator("list_entities_for_policy").paginate(
        PolicyArn=policy, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert sorted(u["UserName"] for p in pages for u in p["PolicyUsers"]) == names
    assert [g["GroupName"] for p in pages for g in p["PolicyGroups"]] == [group]

    # The marker names the last user shown: deleting that user does not lose the next ones.
    first = iam.list_users(PathPrefix=path, MaxItems=2)
    assert first["IsTruncated"] and [u["UserName"] for u in first["Users"]] == names[:2]
    iam.detach_user_policy(UserName=names[1], PolicyArn=policy)
    iam.remove_user_from_group(GroupName=group, UserName=names[1])
    iam.delete_user(UserName=names[1])
    rest = iam.list_users(PathPrefix=path, MaxItems=5, Marker=first["Marker"])
    assert (rest["IsTruncated"], [u["UserName"] for u in rest["Users"]]) == (False, names[2:])
    assert "Marker" not in rest

    assert error_code(lambda: iam.list_users(MaxItems=1001)) == "ValidationError"
    assert error_code(lambda: iam.list_users(Marker="%%not-ours%%")) == "InvalidInput"

    # The AWS CLI: --max-items stops with a NextToken, and --starting-token goes on from it.
    home = tmp_path / "home"
    write_profiles(home, {"root": (ACCESS_KEY, SECRET_KEY, None)})
    out = aws(server, home, "root", "iam", "list-users", "--path-prefix", path, "--max-items", "2")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [u["UserName"] for u in listed["Users"]] == [names[0], names[2]] and listed["NextToken"]
    out = aws(server, home, "root", "iam", "list-users", "--path-prefix", path, "--starting-token", listed["NextToken"])
    assert out.returncode == 0, out.stderr
    assert [u["UserName"] for u in json.loads(out.stdout)["Users"]] == names[3:]


def test_a_membership_or_attachment_racing_a_deletion_does_not_outlive_it(server):
    """AddUserToGroup against DeleteGroup, AttachUserPolicy against DeletePolicy, at the same
    moment: whichever wins, a new group or policy of the same name starts with no members and no
    attachments (a membership left behind would make the user a member of a group that someone
    else creates later)."""
    adder, deleter = client(server, "iam"), client(server, "iam")
    user = unique("ru")
    adder.create_user(UserName=user)

    def attempt(call):
        try:
            call()
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    def race(join, delete):
        with ThreadPoolExecutor(2) as pool:
            joined, deleted = pool.submit(attempt, join), pool.submit(attempt, delete)
            return joined.result(), deleted.result()

    for _ in range(15):
        group = unique("rg")
        adder.create_group(GroupName=group)
        joined, deleted = race(lambda: adder.add_user_to_group(GroupName=group, UserName=user),
                               lambda: deleter.delete_group(GroupName=group))
        assert joined in ("ok", "NoSuchEntity") and deleted in ("ok", "DeleteConflict"), (joined, deleted)
        if deleted == "ok":
            adder.create_group(GroupName=group)
            assert adder.get_group(GroupName=group)["Users"] == [], "a membership outlived its group"
        else:
            adder.remove_user_from_group(GroupName=group, UserName=user)
        adder.delete_group(GroupName=group)

        document = json.dumps(allow("s3:GetObject", "*"))
        name = unique("rp")
        arn = adder.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
        attached, deleted = race(lambda: adder.attach_user_policy(UserName=user, PolicyArn=arn),
                                 lambda: deleter.delete_policy(PolicyArn=arn))
        assert attached in ("ok", "NoSuchEntity") and deleted in ("ok", "DeleteConflict"), (attached, deleted)
        if deleted == "ok":
            adder.create_policy(PolicyName=name, PolicyDocument=document)
            assert arn not in [p["PolicyArn"] for p in adder.list_attached_user_policies(UserName=user)["AttachedPolicies"]], \
                "an attachment outlived its policy"
        else:
            adder.detach_user_policy(UserName=user, PolicyArn=arn)
        adder.delete_policy(PolicyArn=arn)
