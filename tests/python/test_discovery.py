"""Sensitive-data discovery on upload: the walkthrough's files uploaded with the AWS CLI are each
flagged with the right finding type, severity and locations; remediation tags and quarantines;
a quarantined object's existing link stops; a policy on latchkey:ObjectSensitivity refuses
minting links; scan-gated buckets serve only versions scanned clean; a kill -9 while scans run
loses none and records none twice."""

import json
import sqlite3
import subprocess
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests

from conftest import Server, audit_rows
from test_aws_cli_walkthrough import aws
from test_identity import client, error_code, new_user, signed_api
from test_shares import api, mint

# Fictitious people with Luhn-valid test card numbers, as in the walkthrough's spreadsheet.
CUSTOMERS = """name,address,phone,email,card
Jane Doe,12 High Street London SW1A 1AA,+44 20 7946 0958,jane.doe@example.org,4111 1111 1111 1111
John Roe,500 Main Street Springfield,+1 415-555-0132,john.roe@example.com,5555555555554444
Ann Poe,7 Rue de Rivoli Paris,+33 1 42 68 53 00,ann.poe@example.net,378282246310005
"""
CREDENTIALS_CSV = """User name,Password,Access key ID,Secret access key,Console login link
deploy,,AKIAQ3EGUWZ5T6RVK2MA,Gx4vN0q8sT2mW7yB1cR5uE9hJ3kL6pZ0aD8fQ2wX,https://123456789012.signin.aws.amazon.com/console
"""

QUARANTINE_CREDENTIALS = {
    "remediation": [
        {"finding_types": ["Credentials"], "min_severity": "High", "actions": ["tag", "quarantine"]},
        {"finding_types": ["*"], "actions": ["tag"]},
    ],
}


def objects(server, bucket):
    """{key: (sensitivity, quarantined)} as the store holds them."""
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, sensitivity, quarantined FROM objects WHERE bucket = ?", [bucket]).fetchall()
    finally:
        db.close()
    return {key: (sensitivity, bool(quarantined)) for key, sensitivity, quarantined in rows}


def findings(server, bucket):
    """{key: [finding, ...]} as the store holds them, each a dict with its report parsed."""
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT key, finding_type, severity, detail, actions, version_id FROM findings WHERE bucket = ?",
            [bucket]).fetchall()
    finally:
        db.close()
    found = {}
    for key, finding_type, severity, detail, actions, version in rows:
        found.setdefault(key, []).append({"type": finding_type, "severity": severity, "report": json.loads(detail),
                                          "actions": json.loads(actions), "version": version})
    return found


def wait_scanned(server, bucket, keys, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        state = objects(server, bucket)
        if all(state.get(k, (None,))[0] is not None for k in keys):
            return state
        assert time.monotonic() < deadline, f"not scanned within {timeout} s: {state}"
        time.sleep(0.1)


def identifiers(finding):
    return {f["identifier"]: f for f in finding["report"]["findings"]}


@pytest.fixture
def walkthrough_files(tmp_path):
    files = tmp_path / "upload"
    files.mkdir()
    (files / "customers.csv").write_text(CUSTOMERS)
    (files / "credentials.csv").write_text(CREDENTIALS_CSV)
    (files / "menu.txt").write_text("Soup of the day: leek and potato.\n")
    out = subprocess.run(["openssl", "genrsa", "-out", str(files / "ec2-key.pem"), "2048"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return files


def test_the_walkthroughs_uploads_are_flagged_tagged_and_quarantined(tmp_path, walkthrough_files):
    server = Server(tmp_path / "data", config={"discovery": QUARANTINE_CREDENTIALS}).start()
    try:
        env = server.cli_env(tmp_path / "home")
        bucket = f"walk-{uuid.uuid4().hex[:8]}"
        aws(server, env, "s3", "mb", f"s3://{bucket}")
        aws(server, env, "s3", "cp", "--recursive", str(walkthrough_files), f"s3://{bucket}/")
        state = wait_scanned(server, bucket, ["customers.csv", "credentials.csv", "ec2-key.pem", "menu.txt"])
        assert state == {
            "customers.csv": ("High", False),
            "credentials.csv": ("High", True),
            "ec2-key.pem": ("High", True),
            "menu.txt": ("None", False),
        }
        found = findings(server, bucket)
        assert set(found) == {"customers.csv", "credentials.csv", "ec2-key.pem"}, "a clean file has no finding"
        assert all(len(f) == 1 for f in found.values())

        sheet = found["customers.csv"][0]
        assert (sheet["type"], sheet["severity"], sheet["actions"]) == ("SensitiveData:S3Object/Multiple", "High",
                                                                        ["tag"])
        ids = identifiers(sheet)
        cards = ids["CREDIT_CARD_NUMBER"]
        assert cards["count"] == 3 and [loc["line"] for loc in cards["locations"]] == [2, 3, 4]
        assert ids["EMAIL_ADDRESS"]["count"] == 3 and "PHONE_NUMBER" in ids
        assert "4111 1111 1111 1111" not in json.dumps(sheet), "samples are redacted"

        key = found["ec2-key.pem"][0]
        assert (key["type"], key["severity"], key["actions"]) == ("SensitiveData:S3Object/Credentials", "High",
                                                                  ["tag", "quarantine"])
        assert identifiers(key)["PEM_PRIVATE_KEY"]["locations"][0]["line"] == 1
        creds = found["credentials.csv"][0]
        assert creds["type"] == "SensitiveData:S3Object/Credentials"
        assert "AWS_CREDENTIALS" in identifiers(creds)
        assert "Gx4vN0q8sT2mW7yB1cR5uE9hJ3kL6pZ0aD8fQ2wX" not in json.dumps(creds)

        s3 = server.client()
        tags = s3.get_object_tagging(Bucket=bucket, Key="customers.csv")["TagSet"]
        assert tags == [{"Key": "latchkey:sensitivity", "Value": "High"}]
        assert s3.get_object_tagging(Bucket=bucket, Key="menu.txt")["TagSet"] == []
        # Quarantined: GET, copy and a new link are refused; HEAD still answers.
        assert error_code(lambda: s3.get_object(Bucket=bucket, Key="ec2-key.pem")) == "AccessDenied"
        assert error_code(lambda: s3.copy_object(Bucket=bucket, Key="copy.pem",
                                                 CopySource={"Bucket": bucket, "Key": "ec2-key.pem"})) == "AccessDenied"
        assert api(server, "POST", "/-/shares", {"bucket": bucket, "key": "ec2-key.pem"}).status_code == 403
        assert s3.head_object(Bucket=bucket, Key="ec2-key.pem")["ContentLength"] > 1000
        presigned = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "credentials.csv"})
        refused = requests.get(presigned, timeout=10)
        assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text
        assert "quarantin" not in refused.text, "the caller learns nothing of why"
        reasons = [row["reason"] for row in audit_rows(server, event="object.withheld")]
        assert any(f"s3://{bucket}/ec2-key.pem" in r and "quarantined" in r for r in reasons), reasons
        assert any(f"s3://{bucket}/credentials.csv" in r for r in reasons), reasons
        scanned = [row["reason"] for row in audit_rows(server, event="scan.finding")]
        assert sum(f"s3://{bucket}/ec2-key.pem " in r for r in scanned) == 1, scanned
        # The customers file is tagged, not quarantined: it is served.
        assert s3.get_object(Bucket=bucket, Key="customers.csv")["Body"].read().decode() == CUSTOMERS

        # Nobody sets Latchkey's own tags.
        assert error_code(lambda: s3.put_object_tagging(
            Bucket=bucket, Key="menu.txt",
            Tagging={"TagSet": [{"Key": "latchkey:sensitivity", "Value": "None"}]})) == "InvalidTag"
        assert error_code(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x",
                                                Tagging="LatchKey:sensitivity=None")) == "InvalidTag"
        # A new version starts unscanned and is scanned again: a clean one is served.
        s3.put_object(Bucket=bucket, Key="ec2-key.pem", Body=b"rotated: see the vault\n")
        assert wait_scanned(server, bucket, ["ec2-key.pem"])["ec2-key.pem"] == ("None", False)
        assert s3.get_object(Bucket=bucket, Key="ec2-key.pem")["Body"].read() == b"rotated: see the vault\n"
        assert s3.get_object_tagging(Bucket=bucket, Key="ec2-key.pem")["TagSet"] == []
    finally:
        server.stop()


def test_a_policy_on_object_sensitivity_refuses_links_to_sensitive_objects(tmp_path, walkthrough_files):
    server = Server(tmp_path / "data").start()
    try:
        s3 = server.client()
        bucket = f"pol-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="ec2-key.pem", Body=(walkthrough_files / "ec2-key.pem").read_bytes())
        s3.put_object(Bucket=bucket, Key="menu.txt", Body=b"soup\n")
        assert wait_scanned(server, bucket, ["ec2-key.pem", "menu.txt"]) == {
            "ec2-key.pem": ("High", False), "menu.txt": ("None", False)}
        user, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "latchkey:CreateShare"],
             "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Deny", "Action": "latchkey:CreateShare", "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"StringEquals": {"latchkey:ObjectSensitivity": ["High", "Unscanned"]}}}]})
        refused = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "ec2-key.pem"}, key_id, secret)
        assert refused.status_code == 403
        made = signed_api(server, "POST", "/-/shares", {"bucket": bucket, "key": "menu.txt"}, key_id, secret)
        assert made.status_code == 201, made.text
        # Tagged only (the default remediation): the owner's own GET still works.
        user_s3 = client(server, "s3", key_id, secret)
        assert user_s3.get_object(Bucket=bucket, Key="ec2-key.pem")["ContentLength"] > 1000
        denied = audit_rows(server, event="share.create_denied")
        assert len(denied) == 1 and denied[0]["principal"].endswith(":user/" + user), denied
    finally:
        server.stop()


def queue_current_versions(server, bucket):
    """Queues a scan of every object of the bucket, as a scan job would (the server is stopped)."""
    db = sqlite3.connect(server.data_dir / "meta.db")
    try:
        db.execute("INSERT INTO scan_queue (bucket, key, version_id, due_ms) "
                   "SELECT bucket, key, version_id, 0 FROM objects WHERE bucket = ?", [bucket])
        db.commit()
    finally:
        db.close()


def test_a_quarantined_objects_outstanding_link_stops_working(tmp_path, walkthrough_files):
    data = tmp_path / "data"
    server = Server(data, config={"discovery": {"on_upload": False}}).start()
    try:
        s3 = server.client()
        bucket = f"q-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="ec2-key.pem", Body=(walkthrough_files / "ec2-key.pem").read_bytes())
        link = mint(server, bucket, "ec2-key.pem", max_uses=3)
        assert requests.get(link["api_url"], timeout=10).status_code == 200
        time.sleep(1)
        assert objects(server, bucket) == {"ec2-key.pem": (None, False)}, "scanning on upload is off"
    finally:
        server.stop()
    queue_current_versions(server, bucket)
    server = Server(data, config={"discovery": QUARANTINE_CREDENTIALS})
    server.start()
    try:
        assert wait_scanned(server, bucket, ["ec2-key.pem"])["ec2-key.pem"] == ("High", True)
        # The restarted server listens on another port.
        url = urlparse(link["api_url"])
        assert requests.get(f"{server.endpoint}{url.path}?{url.query}", timeout=10).status_code == 403
        denied = [row["reason"] for row in audit_rows(server, event="share.denied", share_id=link["id"])]
        assert denied == ["object_withheld"], denied
    finally:
        server.stop()


def test_a_scan_gated_bucket_serves_new_versions_only_once_scanned_clean(tmp_path, walkthrough_files):
    data = tmp_path / "data"
    gated = {"gated_buckets": ["incoming"]}
    server = Server(data, config={"discovery": {**gated, "on_upload": False}}).start()
    try:
        s3 = server.client()
        for bucket in ("incoming", "open"):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="menu.txt", Body=b"soup\n")
        assert error_code(lambda: s3.get_object(Bucket="incoming", Key="menu.txt")) == "AccessDenied"
        assert api(server, "POST", "/-/shares", {"bucket": "incoming", "key": "menu.txt"}).status_code == 403
        assert s3.get_object(Bucket="open", Key="menu.txt")["Body"].read() == b"soup\n"
        reasons = [row["reason"] for row in audit_rows(server, event="object.withheld")]
        assert any("s3://incoming/menu.txt" in r and "not scanned yet" in r for r in reasons), reasons
    finally:
        server.stop()
    queue_current_versions(server, "incoming")
    server = Server(data, config={"discovery": gated}).start()
    try:
        s3 = server.client()
        s3.put_object(Bucket="incoming", Key="ec2-key.pem", Body=(walkthrough_files / "ec2-key.pem").read_bytes())
        state = wait_scanned(server, "incoming", ["menu.txt", "ec2-key.pem"])
        assert state == {"menu.txt": ("None", False), "ec2-key.pem": ("High", False)}
        assert s3.get_object(Bucket="incoming", Key="menu.txt")["Body"].read() == b"soup\n"
        assert api(server, "POST", "/-/shares", {"bucket": "incoming", "key": "menu.txt"}).status_code == 201
        # Scanned, but not clean: still withheld in a gated bucket.
        assert error_code(lambda: s3.get_object(Bucket="incoming", Key="ec2-key.pem")) == "AccessDenied"
    finally:
        server.stop()


def test_kill9_while_scans_run_loses_none_and_records_none_twice(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    s3 = server.client()
    s3.create_bucket(Bucket="bulk")
    filler = ("nothing sensitive on this line at all, just words and more words\n" * 16384).encode()  # 1 MiB
    secret = b"contact jane.doe@example.org\n"
    sensitive = {f"doc-{n:02}.txt" for n in range(0, 24, 3)}
    for n in range(24):
        key = f"doc-{n:02}.txt"
        s3.put_object(Bucket="bulk", Key=key, Body=filler * 4 + (secret if key in sensitive else b""))
    server.kill9()
    scanned_before = {k for k, (s, _) in objects(server, "bulk").items() if s is not None}
    assert len(scanned_before) < 24, "the kill came too late to interrupt any scan"
    server = Server(data).start()
    try:
        state = wait_scanned(server, "bulk", [f"doc-{n:02}.txt" for n in range(24)], timeout=120)
        assert {k for k, (s, _) in state.items() if s == "Low"} == sensitive
        assert {k for k, (s, _) in state.items() if s == "None"} == {f"doc-{n:02}.txt" for n in range(24)} - sensitive
        found = findings(server, "bulk")
        assert set(found) == sensitive and all(len(f) == 1 for f in found.values()), found
        db = sqlite3.connect(f"file:{data / 'meta.db'}?mode=ro", uri=True)
        try:
            assert db.execute("SELECT COUNT(*) FROM scan_queue").fetchone() == (0,), "the queue drained"
        finally:
            db.close()
        events = [row["reason"] for row in audit_rows(server, event="scan.finding")]
        for key in sensitive:
            assert sum(f"s3://bulk/{key} " in r for r in events) <= 1, events
    finally:
        server.stop()
