"""The policy simulator: `latchkey policy simulate` and boto3's simulate_principal_policy /
simulate_custom_policy against a real server, and `latchkey policy validate` on local files."""

import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import BIN
from test_identity import client, error_code, new_user

MFA_DELETE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"},
        {"Sid": "DeleteWithMfa", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::reports/*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
    ],
}
OBJECT = "arn:aws:s3:::reports/q3.pdf"


def policy_cli(env, *args, endpoint=None):
    extra = ["--endpoint-url", endpoint] if endpoint else []
    return subprocess.run([BIN, "policy", *args, *extra], env=env, capture_output=True, text=True, timeout=30)


def blocks(stdout):
    """The `key: value` blocks of `policy simulate`, one per result (after the principal line)."""
    parts = stdout.strip().split("\n\n")
    return parts[0], [[line.split(": ", 1) for line in part.splitlines()] for part in parts[1:]]


def values(block, key):
    return [value for k, value in block if k == key]


def test_simulate_an_mfa_gated_delete_from_the_command_line(server, tmp_path):
    name, _, _ = new_user(server, MFA_DELETE)
    env = server.cli_env(tmp_path / "home")

    denied = policy_cli(env, "simulate", "--principal", name, "--action", "s3:DeleteObject", "--resource", OBJECT,
                        endpoint=server.endpoint)
    assert denied.returncode == 1, denied.stderr
    principal, [result] = blocks(denied.stdout)
    assert principal.startswith("principal: arn:aws:iam::") and principal.endswith(f":user/{name}")
    assert values(result, "action") == ["s3:DeleteObject"] and values(result, "resource") == [OBJECT]
    assert values(result, "decision") == ["Deny (implicitDeny)"]
    assert values(result, "failed condition") == ["p/DeleteWithMfa: aws:MultiFactorAuthPresent is not in the request"]
    assert values(result, "missing context") == ["aws:MultiFactorAuthPresent"]

    allowed = policy_cli(env, "simulate", "--principal", name, "--action", "s3:DeleteObject", "--resource", OBJECT,
                         "--context", "aws:MultiFactorAuthPresent=true", endpoint=server.endpoint)
    assert allowed.returncode == 0, allowed.stderr
    _, [result] = blocks(allowed.stdout)
    assert values(result, "decision") == ["Allow (allowed)"]
    assert values(result, "policy") == ["p (user), sid: DeleteWithMfa"]
    assert values(result, "failed condition") == [] and values(result, "missing context") == []

    # A value the condition does not accept is reported with what the request had.
    wrong = policy_cli(env, "simulate", "--principal", name, "--action", "s3:DeleteObject", "--resource", OBJECT,
                       "--context", "aws:MultiFactorAuthPresent=false", endpoint=server.endpoint)
    assert wrong.returncode == 1
    _, [result] = blocks(wrong.stdout)
    assert values(result, "failed condition") == [
        "p/DeleteWithMfa: condition Bool aws:MultiFactorAuthPresent: request has false"]


def test_simulate_several_actions_by_arn_as_json(server, tmp_path):
    name, _, _ = new_user(server, MFA_DELETE)
    arn = client(server, "iam").get_user(UserName=name)["User"]["Arn"]
    env = server.cli_env(tmp_path / "home")
    out = policy_cli(env, "simulate", "--principal", arn, "--action", "s3:GetObject", "--action", "s3:DeleteObject",
                     "--action", "s3:PutObject", "--resource", OBJECT, "--json", endpoint=server.endpoint)
    assert out.returncode == 1, out.stderr
    results = {r["action"]: r for r in json.loads(out.stdout)}
    assert {a: r["decision"] for a, r in results.items()} == {
        "s3:GetObject": "allowed", "s3:DeleteObject": "implicitDeny", "s3:PutObject": "implicitDeny"}
    assert results["s3:GetObject"]["matched_statements"] == [{"policy": "p", "type": "user", "sid": "Read"}]
    assert results["s3:GetObject"]["allowed"] is True
    assert results["s3:PutObject"]["failed_conditions"] == []
    assert results["s3:PutObject"]["reason"] == "no identity-based policy allows the action"

    only_read = policy_cli(env, "simulate", "--principal", arn, "--action", "s3:GetObject", "--resource", OBJECT,
                           endpoint=server.endpoint)
    assert only_read.returncode == 0, only_read.stderr


def test_simulate_a_role_by_name_and_unknown_principals(server, tmp_path):
    iam = client(server, "iam")
    role = f"r-{uuid.uuid4().hex[:10]}"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                     "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    env = server.cli_env(tmp_path / "home")

    out = policy_cli(env, "simulate", "--principal", role, "--action", "s3:GetObject", "--resource", OBJECT,
                     endpoint=server.endpoint)
    assert out.returncode == 1, out.stderr
    principal, [result] = blocks(out.stdout)
    assert principal == f"principal: {role_arn}"
    assert values(result, "decision") == ["Deny (implicitDeny)"]

    missing = policy_cli(env, "simulate", "--principal", "nobody-by-this-name", "--action", "s3:GetObject",
                         endpoint=server.endpoint)
    assert missing.returncode == 2
    assert 'no user or role is named "nobody-by-this-name"' in missing.stderr and missing.stdout == ""

    no_arn = policy_cli(env, "simulate", "--principal", role_arn.replace(role, role + "x"), "--action", "s3:GetObject",
                        endpoint=server.endpoint)
    assert no_arn.returncode == 2 and "NoSuchEntity" in no_arn.stderr, no_arn.stderr

    bad_context = policy_cli(env, "simulate", "--principal", role, "--action", "s3:GetObject", "--context", "nokey",
                             endpoint=server.endpoint)
    assert bad_context.returncode == 2 and "is not KEY=VALUE" in bad_context.stderr


def test_boto3_simulate_principal_policy(server, bucket):
    name, _, _ = new_user(server, MFA_DELETE)
    iam = client(server, "iam")
    arn = iam.get_user(UserName=name)["User"]["Arn"]

    plain = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:DeleteObject", "s3:GetObject"],
                                          ResourceArns=[OBJECT])
    assert plain["IsTruncated"] is False
    delete, read = plain["EvaluationResults"]
    assert (delete["EvalActionName"], delete["EvalResourceName"], delete["EvalDecision"]) == (
        "s3:DeleteObject", OBJECT, "implicitDeny")
    assert delete["MissingContextValues"] == ["aws:MultiFactorAuthPresent"]
    assert read["EvalDecision"] == "allowed"
    assert read["MatchedStatements"] == [{"SourcePolicyId": "p", "SourcePolicyType": "user"}]

    mfa = [{"ContextKeyName": "aws:MultiFactorAuthPresent", "ContextKeyValues": ["true"], "ContextKeyType": "boolean"}]
    with_mfa = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:DeleteObject"],
                                             ResourceArns=[OBJECT], ContextEntries=mfa)
    assert with_mfa["EvaluationResults"][0]["EvalDecision"] == "allowed"

    # Extra identity policies join the user's; a deny among them wins and is the only statement listed.
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:Delete*", "Resource": "*"}]}
    denied = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:DeleteObject"], ResourceArns=[OBJECT],
                                           ContextEntries=mfa, PolicyInputList=[json.dumps(deny)])
    result = denied["EvaluationResults"][0]
    assert result["EvalDecision"] == "explicitDeny"
    assert result["MatchedStatements"] == [{"SourcePolicyId": "PolicyInputList.1", "SourcePolicyType": "none"}]

    # A boundary given replaces the user's (none here) and caps what the identity policies allow.
    boundary = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    bounded = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:DeleteObject", "s3:GetObject"],
                                            ResourceArns=[OBJECT], ContextEntries=mfa,
                                            PermissionsBoundaryPolicyInputList=[json.dumps(boundary)])
    assert [r["EvalDecision"] for r in bounded["EvaluationResults"]] == ["implicitDeny", "allowed"]

    # A bucket policy naming the user allows what its identity policies do not.
    bucket_policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Uploads", "Effect": "Allow", "Principal": {"AWS": arn}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    granted = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:PutObject"],
                                            ResourceArns=[f"arn:aws:s3:::{bucket}/in.txt"],
                                            ResourcePolicy=json.dumps(bucket_policy))
    result = granted["EvaluationResults"][0]
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"] == [{"SourcePolicyId": "ResourcePolicy", "SourcePolicyType": "resource"}]

    # Without ResourceArns the resource is "*".
    star = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:GetObject"])
    assert star["EvaluationResults"][0]["EvalResourceName"] == "*"


def test_boto3_simulate_custom_policy(server):
    iam = client(server, "iam")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Office", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    office = [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.1.2.3"], "ContextKeyType": "ip"}]
    inside = iam.simulate_custom_policy(PolicyInputList=[json.dumps(policy)], ActionNames=["s3:ListBucket"],
                                        ResourceArns=["arn:aws:s3:::reports"], ContextEntries=office)
    result = inside["EvaluationResults"][0]
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"] == [{"SourcePolicyId": "PolicyInputList.1", "SourcePolicyType": "none"}]
    outside = iam.simulate_custom_policy(PolicyInputList=[json.dumps(policy)], ActionNames=["s3:ListBucket"],
                                         ResourceArns=["arn:aws:s3:::reports"])
    assert outside["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"
    assert outside["EvaluationResults"][0]["MissingContextValues"] == ["aws:SourceIp"]

    def refused(**params):
        with pytest.raises(ClientError) as error:
            iam.simulate_custom_policy(**{"ActionNames": ["s3:ListBucket"], **params})
        return error.value.response["Error"]

    malformed = refused(PolicyInputList=[json.dumps(policy), '{"Version": "2012-10-17", "Statement": [{"Effect": '
                                                             '"Allow", "Action": "s3:GetObject"}]}'])
    assert malformed["Code"] == "MalformedPolicyDocument"
    assert malformed["Message"].startswith("PolicyInputList.2: ") and "Statement[0]" in malformed["Message"]
    not_json = refused(PolicyInputList=["{not json"])
    assert not_json["Code"] == "MalformedPolicyDocument" and "line 1 column" in not_json["Message"]
    bucket_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports"}]}
    no_caller = refused(PolicyInputList=[json.dumps(policy)], ResourcePolicy=json.dumps(bucket_policy))
    assert no_caller["Code"] == "InvalidInput" and "CallerArn" in no_caller["Message"]
    # With a caller, a bucket policy naming it allows what the identity policy's condition does not.
    name, _, _ = new_user(server)
    caller = iam.get_user(UserName=name)["User"]["Arn"]
    bucket_policy["Statement"][0]["Principal"] = {"AWS": caller}
    as_caller = iam.simulate_custom_policy(PolicyInputList=[json.dumps(policy)], ActionNames=["s3:ListBucket"],
                                           ResourceArns=["arn:aws:s3:::reports"], CallerArn=caller,
                                           ResourcePolicy=json.dumps(bucket_policy))
    assert as_caller["EvaluationResults"][0]["EvalDecision"] == "allowed"
    assert as_caller["EvaluationResults"][0]["MatchedStatements"] == [
        {"SourcePolicyId": "ResourcePolicy", "SourcePolicyType": "resource"}]
    unknown_caller = refused(PolicyInputList=[json.dumps(policy)], CallerArn=caller + "-gone")
    assert unknown_caller["Code"] == "InvalidInput" and "must name an existing user" in unknown_caller["Message"]
    bad_ip = refused(PolicyInputList=[json.dumps(policy)],
                     ContextEntries=[{**office[0], "ContextKeyValues": ["10.1.2.300"]}])
    assert bad_ip["Code"] == "InvalidInput" and '"10.1.2.300" is not a valid ip value' in bad_ip["Message"]
    bad_action = refused(PolicyInputList=[json.dumps(policy)], ActionNames=["ListBucket"])
    assert bad_action["Code"] == "InvalidInput" and "service:Action" in bad_action["Message"]


def test_simulation_is_authorised_like_any_iam_action(server):
    iam = client(server, "iam")
    target, _, _ = new_user(server, MFA_DELETE)
    target_arn = iam.get_user(UserName=target)["User"]["Arn"]
    may_simulate_custom = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:SimulateCustomPolicy", "Resource": "*"}]}
    _, key_id, secret = new_user(server, may_simulate_custom)
    own = client(server, "iam", key_id, secret)
    assert error_code(lambda: own.simulate_principal_policy(PolicySourceArn=target_arn,
                                                            ActionNames=["s3:GetObject"])) == "AccessDenied"
    custom = own.simulate_custom_policy(PolicyInputList=[json.dumps(MFA_DELETE)], ActionNames=["s3:GetObject"],
                                        ResourceArns=[OBJECT])
    assert custom["EvaluationResults"][0]["EvalDecision"] == "allowed"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_reports_warnings_errors_and_clean_policies(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    mfa_mistake = write(tmp_path, "mfa.json", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"},
        {"Sid": "NoMfaNoDelete", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::reports/*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}]}, indent=2))
    out = policy_cli(env, "validate", mfa_mistake)
    assert out.returncode == 1, out.stderr
    assert out.stdout.strip() == (
        f"{mfa_mistake}: warning: Deny with Bool aws:MultiFactorAuthPresent false never applies to long-term access "
        "keys, whose requests carry no such key; use BoolIfExists at "
        'Statement[1].Condition.Bool."aws:MultiFactorAuthPresent"')

    broken = write(tmp_path, "broken.json", '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow",}\n')
    out = policy_cli(env, "validate", broken)
    assert out.returncode == 2
    assert out.stdout.startswith(f"{broken}: error: policy is not valid JSON") and " at line 4 column" in out.stdout

    no_resource = write(tmp_path, "no-resource.json", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}))
    out = policy_cli(env, "validate", no_resource)
    assert out.returncode == 2 and "at Statement[0]" in out.stdout, out.stdout

    bucket_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/alice"}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::reports/*"}]}
    clean = write(tmp_path, "bucket.json", json.dumps(bucket_policy))
    out = policy_cli(env, "validate", clean, "--kind", "resource")
    assert out.returncode == 0 and out.stdout.strip() == f"{clean}: valid, no warnings", (out.stdout, out.stderr)
    # The same document is no identity policy: those name no Principal.
    out = policy_cli(env, "validate", clean)
    assert out.returncode == 2 and "Principal" in out.stdout, out.stdout

    missing = policy_cli(env, "validate", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read the policy" in missing.stderr
