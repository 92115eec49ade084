"""Custom identifiers through the API (`latchkey custom-identifier`, `/-/findings/identifiers`):
created, listed, tested and deleted with the CLI; refused with a clear error naming the
identifier when invalid, unbounded, too large or taken; found in uploads scanned after their
creation and no longer after their deletion, on every replica sharing PostgreSQL."""

import json
import subprocess
import uuid

from conftest import ACCESS_KEY, BIN, SECRET_KEY, Server, audit_rows, pg_rows, wait_all_scanned
from test_discovery import findings, wait_scanned
from test_identity import new_user, signed_api

EMPLOYEE = ["--regex", r"EMP-[0-9]{6}", "--keyword", "employee", "--severity", "High"]
CONFIG = {"custom_identifiers": [{"name": "ticket", "regex": r"TCK-[0-9]{5}", "severity": "Low"}]}


def cli(server, env, *args, ok=True):
    out = subprocess.run([BIN, "custom-identifier", *args, "--endpoint-url", server.endpoint],
                         env=env, capture_output=True, text=True, timeout=60)
    assert (out.returncode == 0) == ok, (out.returncode, out.stdout, out.stderr)
    return out.stdout if ok else out.stderr


def test_an_identifier_created_with_the_cli_is_found_in_uploads_until_deleted(tmp_path):
    server = Server(tmp_path / "data", config=CONFIG).start()
    try:
        env = server.cli_env(tmp_path / "home")
        created = cli(server, env, "create", "--name", "employee-id", *EMPLOYEE)
        assert created.split()[:4] == ["employee-id", "api", "High", "custom"], created
        listed = [line.split()[:2] for line in cli(server, env, "list").splitlines()]
        assert listed == [["ticket", "config"], ["employee-id", "api"]], listed
        shown = json.loads(cli(server, env, "show", "employee-id"))
        assert (shown["keywords"], shown["max_match_distance"], shown["principal"]) == (
            ["employee"], 50, "arn:aws:iam::000000000000:root"), shown

        s3 = server.client()
        bucket = f"ci-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="staff.txt", Body=b"Rota\nemployee number EMP-123456, ticket TCK-00042\n")
        s3.put_object(Bucket=bucket, Key="nokeyword.txt", Body=b"EMP-123456\n")
        assert wait_scanned(server, bucket, ["staff.txt", "nokeyword.txt"]) == {
            "staff.txt": ("High", False), "nokeyword.txt": ("None", False)}
        found = findings(server, bucket)["staff.txt"][0]
        assert found["type"] == "SensitiveData:S3Object/CustomIdentifier", found
        counts = {f["identifier"]: f["count"] for f in found["report"]["findings"]}
        assert counts == {"employee-id": 1, "ticket": 1}, counts
        employee = next(f for f in found["report"]["findings"] if f["identifier"] == "employee-id")
        assert (employee["severity"], employee["locations"][0]["line"]) == ("High", 2), employee
        assert "123456" not in employee["locations"][0]["sample"], "samples are redacted"

        assert cli(server, env, "delete", "employee-id").strip() == "deleted employee-id"
        s3.put_object(Bucket=bucket, Key="after.txt", Body=b"employee number EMP-654321\n")
        assert wait_scanned(server, bucket, ["after.txt"])["after.txt"] == ("None", False), \
            "deleted: later scans no longer look for it"
        assert "no custom identifier has this name" in cli(server, env, "delete", "employee-id", ok=False)
        for event in ["scan.identifier_created", "scan.identifier_deleted"]:
            reasons = [row["reason"] for row in audit_rows(server, event=event)]
            assert len(reasons) == 1 and reasons[0].startswith('custom identifier "employee-id": {'), reasons
            assert '"regex":"EMP-[0-9]{6}"' in reasons[0], "the trail tells what was searched for"
    finally:
        server.stop()


def test_bad_or_taken_identifiers_are_refused_naming_the_identifier(tmp_path):
    server = Server(tmp_path / "data", config=CONFIG).start()
    try:
        env = server.cli_env(tmp_path / "home")
        refused = {
            "broken": ["--regex", "EMP-[0-9"],
            "unbounded": ["--regex", "EMP-[0-9]+"],
            "empty": ["--regex", "x?"],
            "huge": ["--regex", r"[a-z]{1,2000}#[0-9]{1,2000}"],
            "nested": ["--regex", r"(?:\w{1,40}\s?){1,44}#0"],
            "far": ["--regex", "EMP", "--keyword", "staff", "--max-match-distance", "301"],
            "short-word": ["--regex", "EMP", "--keyword", "ab"],
        }
        for name, fields in refused.items():
            error = cli(server, env, "create", "--name", name, *fields, ok=False)
            assert f'custom identifier "{name}"' in error, error
        for bad_name in ["bad name!", "..", "x" * 129]:
            assert "400" in cli(server, env, "create", "--name", bad_name, "--regex", "EMP", ok=False)
        assert "multiply to 1760" in cli(server, env, "create", "--name", "nested", "--regex",
                                         r"(?:\w{1,40}\s?){1,44}#0", ok=False)
        cli(server, env, "create", "--name", "Badge", "--regex", "B[0-9]{4}")
        for taken in ["badge", "TICKET", "credit_card_number"]:
            error = cli(server, env, "create", "--name", taken, "--regex", "X[0-9]{4}", ok=False)
            assert "409" in error and "exists already" in error, error
        error = cli(server, env, "delete", "ticket", ok=False)
        assert "configuration file" in error, error
        listed = [line.split()[0] for line in cli(server, env, "list").splitlines()]
        assert listed == ["ticket", "Badge"], "nothing refused was stored"
    finally:
        server.stop()


def test_an_identifier_is_tested_on_sample_text_without_being_created(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        env = server.cli_env(tmp_path / "home")
        text = "employee EMP-123456 and EMP-000001; further along this line, out of reach: EMP-999999\nEMP-1"
        out = cli(server, env, "test", *EMPLOYEE, "--text", text)
        lines = out.splitlines()
        assert lines[0] == "2 matches" and len(lines) == 3, out
        assert lines[1].startswith("  line 1 column 10: ") and "123456" not in lines[1], out
        assert "longer than 1000" in cli(server, env, "test", *EMPLOYEE, "--text", "x" * 1001, ok=False)
        assert cli(server, env, "list").strip() == "", "testing creates nothing"
    finally:
        server.stop()


def test_principals_need_the_custom_identifier_actions(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        user, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "latchkey:GetCustomIdentifier", "Resource": "*"},
            {"Effect": "Allow", "Action": "latchkey:CreateCustomIdentifier",
             "Resource": "arn:latchkey:scan:::custom-identifier/team-*"}]})
        path = "/-/findings/identifiers"
        body = {"name": "other", "regex": "EMP-[0-9]{6}"}
        assert signed_api(server, "POST", path, body, key_id, secret).status_code == 403
        made = signed_api(server, "POST", path, {**body, "name": "team-x"}, key_id, secret)
        assert made.status_code == 201, made.text
        assert made.json()["principal"].endswith(":user/" + user), made.text
        assert signed_api(server, "DELETE", f"{path}/team-x", None, key_id, secret).status_code == 403
        listed = signed_api(server, "GET", path, None, key_id, secret)
        assert [i["name"] for i in listed.json()["identifiers"]] == ["team-x"], listed.text
        denied = [row["reason"] for row in audit_rows(server, event="policy.denied")]
        assert any(r.startswith("latchkey:CreateCustomIdentifier on arn:latchkey:scan:::custom-identifier/other")
                   for r in denied), denied
        assert any(r.startswith("latchkey:DeleteCustomIdentifier") for r in denied), denied
    finally:
        server.stop()


def test_an_identifier_created_on_one_replica_is_used_by_the_other(replicas, tmp_path):
    a, b = replicas
    schema = a.schema()
    cli(a, a.cli_env(tmp_path / "home"), "create", "--name", "project-code", "--regex", r"PRJ-[A-Z]{3}[0-9]{3}")
    sb = b.client()
    sb.create_bucket(Bucket="codes")
    for n in range(6):
        sb.put_object(Bucket="codes", Key=f"n{n}.txt", Body=f"see PRJ-ABC{n:03}\n".encode())
    wait_all_scanned(schema)
    found = pg_rows(f"SELECT key, detail FROM {schema}.findings")
    assert len(found) == 6, found
    assert all(json.loads(r["detail"])["findings"][0]["identifier"] == "project-code" for r in found), found


def test_a_stored_identifier_the_config_file_takes_over_is_left_out_and_blocks_nothing(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    try:
        cli(server, server.cli_env(tmp_path / "home"), "create", "--name", "k3c", "--regex", "K3C-[0-9]{4}")
    finally:
        server.stop()
    server = Server(data, config={"custom_identifiers": [{"name": "K3C", "regex": "KC-[0-9]{4}"}]}).start()
    try:
        env = server.cli_env(tmp_path / "home")
        cli(server, env, "create", "--name", "brand-new", "--regex", "BN-[0-9]{4}")
        listed = signed_api_root(server, "GET", "/-/findings/identifiers")
        scanned = {(i["name"], i["source"]): i["scanned"] for i in listed["identifiers"]}
        assert scanned == {("K3C", "config"): True, ("k3c", "api"): False, ("brand-new", "api"): True}, scanned
    finally:
        server.stop()


def test_names_that_are_not_identifier_names_are_refused_before_any_audit(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        _, key_id, secret = new_user(server)
        body = {"name": "x\n" * 30000, "regex": "EMP-[0-9]{6}"}
        refused = signed_api(server, "POST", "/-/findings/identifiers", body, key_id, secret)
        assert refused.status_code == 400, refused.text
        odd = signed_api(server, "GET", "/-/findings/identifiers/--", None, key_id, secret)
        assert odd.status_code == 404, odd.text
        assert audit_rows(server, event="policy.denied") == [], "nothing of a bad name reaches the trail"
    finally:
        server.stop()


def signed_api_root(server, method, path):
    answer = signed_api(server, method, path, None, ACCESS_KEY, SECRET_KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()
