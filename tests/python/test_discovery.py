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
import zipfile

import pytest
import requests

from conftest import BIN, Server, audit_rows, pg_rows, wait_all_scanned
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


def findings_cli(server, env, *args):
    out = subprocess.run([BIN, "findings", *args, "--endpoint-url", server.endpoint],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def identifiers(finding):
    return {f["identifier"]: f for f in finding["report"]["findings"]}


def xlsx(path, rows):
    """A minimal spreadsheet (one sheet, "Customers", every cell a shared string), as Excel lays
    out its parts."""
    strings = [cell for row in rows for cell in row]
    cells = lambda r, row: "".join(  # noqa: E731
        f'<c r="{chr(65 + c)}{r}" t="s"><v>{strings.index(value)}</v></c>' for c, value in enumerate(row))
    sheet = "".join(f'<row r="{r}">{cells(r, row)}</row>' for r, row in enumerate(rows, start=1))
    escape = lambda s: s.replace("&", "&amp;").replace("<", "&lt;")  # noqa: E731
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        book.writestr("xl/workbook.xml", '<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
                      'relationships"><sheets><sheet name="Customers" sheetId="1" r:id="rId1"/></sheets></workbook>')
        book.writestr("xl/_rels/workbook.xml.rels", '<Relationships><Relationship Id="rId1" '
                      'Target="worksheets/sheet1.xml"/></Relationships>')
        book.writestr("xl/sharedStrings.xml",
                      "<sst>" + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
        book.writestr("xl/worksheets/sheet1.xml", f"<worksheet><sheetData>{sheet}</sheetData></worksheet>")


@pytest.fixture
def walkthrough_files(tmp_path):
    files = tmp_path / "upload"
    files.mkdir()
    (files / "customers.csv").write_text(CUSTOMERS)
    xlsx(files / "customers.xlsx", [line.split(",") for line in CUSTOMERS.splitlines()])
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
        state = wait_scanned(server, bucket, ["customers.csv", "customers.xlsx", "credentials.csv", "ec2-key.pem",
                                              "menu.txt"])
        assert state == {
            "customers.csv": ("High", False),
            "customers.xlsx": ("High", False),
            "credentials.csv": ("High", True),
            "ec2-key.pem": ("High", True),
            "menu.txt": ("None", False),
        }
        found = findings(server, bucket)
        assert set(found) == {"customers.csv", "customers.xlsx", "credentials.csv", "ec2-key.pem"}, \
            "a clean file has no finding"
        assert all(len(f) == 1 for f in found.values())

        sheet = found["customers.csv"][0]
        assert (sheet["type"], sheet["severity"], sheet["actions"]) == ("SensitiveData:S3Object/Multiple", "High",
                                                                        ["tag"])
        ids = identifiers(sheet)
        cards = ids["CREDIT_CARD_NUMBER"]
        assert cards["count"] == 3
        assert [loc["place"] for loc in cards["locations"]] == [
            {"kind": "cell", "row": row, "column": 5, "header": "card"} for row in (2, 3, 4)]
        book = found["customers.xlsx"][0]
        assert (book["type"], book["severity"]) == ("SensitiveData:S3Object/Multiple", "High")
        assert [loc["place"] for loc in identifiers(book)["CREDIT_CARD_NUMBER"]["locations"]] == [
            {"kind": "sheet_cell", "sheet": "Customers", "cell": f"E{row}", "header": "card"} for row in (2, 3, 4)]
        assert identifiers(book)["EMAIL_ADDRESS"]["count"] == 3
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
        assert error_code(lambda: s3.get_object(Bucket=bucket, Key="ec2-key.pem", Range="bytes=0-31")) == "AccessDenied"
        assert error_code(lambda: s3.get_object(Bucket=bucket, Key="ec2-key.pem", PartNumber=1)) == "AccessDenied"
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

        # The findings, through `latchkey findings` (the signed /-/findings API).
        listed = findings_cli(server, env, "list", "--bucket", bucket, "--json")
        assert sorted(json.loads(line)["key"] for line in listed.splitlines()) == [
            "credentials.csv", "customers.csv", "customers.xlsx", "ec2-key.pem"]
        pem_id = next(json.loads(line)["id"] for line in listed.splitlines() if "ec2-key.pem" in line)
        shown = findings_cli(server, env, "show", pem_id)
        assert "SensitiveData:S3Object/Credentials" in shown and "PEM_PRIVATE_KEY" in shown and "line 1" in shown
        assert "BEGIN RSA PRIVATE KEY-----\nMII" not in shown
        assert findings_cli(server, env, "queue").split() == ["queued", "0", "scanning", "0", "given", "up", "0"]
        # Others need latchkey:ReadFindings on the bucket.
        _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "latchkey:ReadFindings", "Resource": f"arn:aws:s3:::{bucket}"}]})
        mine = signed_api(server, "GET", f"/-/findings?bucket={bucket}", None, key_id, secret)
        assert mine.status_code == 200 and len(mine.json()["findings"]) == 4
        assert signed_api(server, "GET", f"/-/findings/{pem_id}", None, key_id, secret).json()["key"] == "ec2-key.pem"
        assert signed_api(server, "GET", "/-/findings", None, key_id, secret).status_code == 403, "every bucket's"
        _, other_id, other_secret = new_user(server)
        assert signed_api(server, "GET", f"/-/findings/{pem_id}", None, other_id, other_secret).status_code == 403
        assert signed_api(server, "GET", "/-/findings/f-nope", None, other_id, other_secret).status_code == 403, \
            "whether a finding exists is not told"
        assert api(server, "GET", "/-/findings/f-nope").status_code == 404
        assert api(server, "GET", f"/-/findings/{pem_id}/extra").status_code == 404
        # Allowed on every bucket but denied this one: a listing of all leaves this one's out.
        _, deny_id, deny_secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "latchkey:ReadFindings", "Resource": "*"},
            {"Effect": "Deny", "Action": "latchkey:ReadFindings", "Resource": f"arn:aws:s3:::{bucket}"}]})
        everything = signed_api(server, "GET", "/-/findings", None, deny_id, deny_secret)
        assert everything.status_code == 200 and everything.json()["findings"] == [], everything.text

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


def scan_job(server, env, *args):
    out = subprocess.run([BIN, "scan-job", *args, "--endpoint-url", server.endpoint],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_quarantined_objects_outstanding_link_stops_working(tmp_path, walkthrough_files):
    server = Server(tmp_path / "data", config={"discovery": {**QUARANTINE_CREDENTIALS, "on_upload": False}}).start()
    try:
        s3 = server.client()
        bucket = f"q-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="ec2-key.pem", Body=(walkthrough_files / "ec2-key.pem").read_bytes())
        link = mint(server, bucket, "ec2-key.pem", max_uses=3)
        assert requests.get(link["api_url"], timeout=10).status_code == 200
        time.sleep(1)
        assert objects(server, bucket) == {"ec2-key.pem": (None, False)}, "scanning on upload is off"
        done = scan_job(server, server.cli_env(tmp_path / "home"), "create", "--bucket", bucket, "--wait")
        assert "done" in done.splitlines()[-1] and "1/1 scanned" in done.splitlines()[-1], done
        assert objects(server, bucket)["ec2-key.pem"] == ("High", True)
        assert requests.get(link["api_url"], timeout=10).status_code == 403
        denied = [row["reason"] for row in audit_rows(server, event="share.denied", share_id=link["id"])]
        assert denied == ["object_withheld"], denied
    finally:
        server.stop()


def dead_scans(server):
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT bucket, key, last_error FROM scan_queue WHERE dead").fetchall()
    finally:
        db.close()


def test_a_scan_gated_bucket_serves_new_versions_only_once_scanned_clean(tmp_path, walkthrough_files):
    gated = {"gated_buckets": ["incoming"], "max_scan_bytes": 100_000}
    server = Server(tmp_path / "data", config={"discovery": gated}).start()
    try:
        s3 = server.client()
        big = b"nothing sensitive in this line\n" * 5000
        for bucket in ("incoming", "open"):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="big.txt", Body=big)
        # Too large to scan: given up at once, it stays unscanned, so withheld where gated.
        deadline = time.monotonic() + 30
        while len(dead_scans(server)) < 2:
            assert time.monotonic() < deadline, dead_scans(server)
            time.sleep(0.1)
        assert all("max_scan_bytes" in error for _, _, error in dead_scans(server))
        assert error_code(lambda: s3.get_object(Bucket="incoming", Key="big.txt")) == "AccessDenied"
        assert api(server, "POST", "/-/shares", {"bucket": "incoming", "key": "big.txt"}).status_code == 403
        assert s3.get_object(Bucket="open", Key="big.txt")["Body"].read() == big
        reasons = [row["reason"] for row in audit_rows(server, event="object.withheld")]
        assert any("s3://incoming/big.txt" in r and "given up: see scan.failed" in r for r in reasons), reasons
        failed = [row["reason"] for row in audit_rows(server, event="scan.failed")]
        assert any("s3://incoming/big.txt" in r and "max_scan_bytes" in r for r in failed), failed

        s3.put_object(Bucket="incoming", Key="menu.txt", Body=b"soup\n")
        s3.put_object(Bucket="incoming", Key="ec2-key.pem", Body=(walkthrough_files / "ec2-key.pem").read_bytes())
        state = wait_scanned(server, "incoming", ["menu.txt", "ec2-key.pem"])
        assert state == {"menu.txt": ("None", False), "ec2-key.pem": ("High", False), "big.txt": (None, False)}
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


def test_scan_jobs_choose_by_prefix_extension_size_and_sample_and_report_progress(tmp_path):
    server = Server(tmp_path / "data", config={"discovery": {"on_upload": False}}).start()
    try:
        env = server.cli_env(tmp_path / "home")
        s3 = server.client()
        s3.create_bucket(Bucket="archive")
        for n in range(40):
            ext = "csv" if n % 2 else "txt"
            body = b"contact jane.doe@example.org\n" if n % 4 == 1 else b"nothing here\n"
            s3.put_object(Bucket="archive", Key=f"2025/file-{n:02}.{ext}", Body=body)
        s3.put_object(Bucket="archive", Key="2025/big.csv", Body=b"x" * 5000)
        s3.put_object(Bucket="archive", Key="other/file.csv", Body=b"jane.doe@example.org\n")
        out = scan_job(server, env, "create", "--bucket", "archive", "--prefix", "2025/", "--include-ext", "CSV",
                       "--max-size", "1000", "--wait")
        last = out.splitlines()[-1]
        assert "done" in last and "20/20 scanned, 0 failed" in last, out
        state = objects(server, "archive")
        scanned = {k for k, (s, _) in state.items() if s is not None}
        assert scanned == {f"2025/file-{n:02}.csv" for n in range(1, 40, 2)}, scanned
        assert set(findings(server, "archive")) == {f"2025/file-{n:02}.csv" for n in range(1, 40, 4)}

        sampled = api(server, "POST", "/-/findings/jobs", {"bucket": "archive", "prefix": "2025/", "sampling": 50})
        assert sampled.status_code == 201, sampled.text
        job = sampled.json()
        assert 8 <= job["total"] <= 33, job
        assert job["criteria"] == {"sampling": 50, "include_ext": [], "max_size": None}
        listed = scan_job(server, env, "list")
        assert job["id"] in listed.splitlines()[0], "newest first"
        shown = api(server, "GET", f"/-/findings/jobs/{job['id']}").json()
        assert shown["id"] == job["id"] and shown["state"] in ("running", "done")
        cancelled = scan_job(server, env, "cancel", job["id"])
        assert "cancelled" in cancelled
        assert api(server, "DELETE", f"/-/findings/jobs/{job['id']}").status_code == 409

        # Bad requests say what is wrong; others need latchkey:CreateScanJob on the bucket.
        bad = api(server, "POST", "/-/findings/jobs", {"bucket": "archive", "sampling": 0})
        assert bad.status_code == 400 and "sampling" in bad.json()["message"]
        assert api(server, "POST", "/-/findings/jobs", {"bucket": "nope"}).status_code == 404
        typo = api(server, "POST", "/-/findings/jobs", {"bucket": "archive", "sample": 5})
        assert typo.status_code == 400 and "sample" in typo.json()["message"]
        _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "latchkey:CreateScanJob", "Resource": "arn:aws:s3:::archive"}]})
        assert signed_api(server, "POST", "/-/findings/jobs", {"bucket": "archive", "prefix": "other/"},
                          key_id, secret).status_code == 201
        assert signed_api(server, "POST", "/-/findings/jobs", {"bucket": "elsewhere"},
                          key_id, secret).status_code == 403
        assert signed_api(server, "GET", "/-/findings/jobs", None, key_id, secret).status_code == 403
        assert wait_scanned(server, "archive", ["other/file.csv"])["other/file.csv"] == ("Low", False)
    finally:
        server.stop()


def test_a_notify_rule_posts_each_finding_signed_to_the_webhooks(tmp_path):
    from test_alarms import SECRET, Receiver, check_signature, wait_for

    receiver = Receiver(fail_first=1)
    config = {
        "discovery": {"remediation": [
            {"finding_types": ["Financial", "Credentials"], "min_severity": "High", "actions": ["tag", "notify"]}]},
        "webhooks": [{"url": receiver.url, "secret": SECRET}],
    }
    server = Server(tmp_path / "data", config=config).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="hooks")
        s3.put_object(Bucket="hooks", Key="cards.csv", Body=CUSTOMERS.encode())
        s3.put_object(Bucket="hooks", Key="emails.txt", Body=b"jane.doe@example.org\n")
        wait_scanned(server, "hooks", ["cards.csv", "emails.txt"])
        wait_for(lambda: len(receiver.received) == 1, "one notification, after one retry")
        headers, body = receiver.received[0]
        check_signature(headers, body)
        sent = json.loads(body)
        found = findings(server, "hooks")
        assert set(found) == {"cards.csv", "emails.txt"}, "both are findings; only one rule says notify"
        assert (sent["bucket"], sent["key"], sent["type"], sent["severity"]) == (
            "hooks", "cards.csv", "SensitiveData:S3Object/Multiple", "High")
        assert headers["x-latchkey-delivery"] == sent["id"] and sent["actions"] == ["tag", "notify"]
        assert "4111 1111 1111 1111" not in body.decode(), "samples only"
        time.sleep(1)
        assert len(receiver.received) == 1, "each finding once"
    finally:
        server.stop()
        receiver.close()


def test_two_replicas_share_the_queue_and_record_each_version_once(replicas):
    """Replicas on one PostgreSQL scan what either was sent, each version once, and one's
    quarantine is the other's."""
    a, b = replicas
    schema = a.schema()
    sa, sb = a.client(), b.client()
    sa.create_bucket(Bucket="shared")
    sensitive = {f"doc-{n:02}.txt" for n in range(0, 30, 3)}
    for n in range(30):
        key = f"doc-{n:02}.txt"
        body = b"contact jane.doe@example.org\n" if key in sensitive else b"nothing here\n"
        (sa if n % 2 else sb).put_object(Bucket="shared", Key=key, Body=body * 20000)

    wait_all_scanned(schema)
    found = pg_rows(f"SELECT key, count(*) AS n FROM {schema}.findings GROUP BY key")
    assert {r["key"] for r in found} == sensitive and all(r["n"] == 1 for r in found), found
    events = audit_rows(a, event="scan.finding")
    assert len(events) == len(sensitive), "one scan.finding per version, whichever replica scanned it"


def test_archives_uploaded_are_read_and_a_bomb_is_given_up_unscanned(tmp_path):
    server = Server(tmp_path / "data", config={"discovery": {"gated_buckets": ["inbox"]}}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="inbox")
        bundle, bomb = tmp_path / "bundle.zip", tmp_path / "bomb.zip"
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("exports/customers.csv", CUSTOMERS)
            z.writestr("readme.txt", "nothing here")
        photos = tmp_path / "photos.zip"
        with zipfile.ZipFile(photos, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("readme.txt", "nothing here")
            z.writestr("cat.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
        s3.upload_file(str(photos), "inbox", "photos.zip")
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("a.txt", b"a" * (256 << 20))
        s3.upload_file(str(bundle), "inbox", "bundle.zip")
        s3.upload_file(str(bomb), "inbox", "bomb.zip")
        state = wait_scanned(server, "inbox", ["bundle.zip", "photos.zip"])
        assert state["bundle.zip"] == ("High", False) and state["photos.zip"] == ("None", False)
        # Nothing found, but not all of it read: no clean verdict in a gated bucket.
        assert error_code(lambda: s3.get_object(Bucket="inbox", Key="photos.zip")) == "AccessDenied"
        partial = [row["reason"] for row in audit_rows(server, event="scan.partial")]
        assert any("photos.zip/cat.png" in r and "binary" in r for r in partial), partial
        cards = identifiers(findings(server, "inbox")["bundle.zip"][0])["CREDIT_CARD_NUMBER"]
        assert {loc["entry"] for loc in cards["locations"]} == {"bundle.zip/exports/customers.csv"}
        deadline = time.monotonic() + 30
        while not dead_scans(server):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        [(bucket, key, error)] = dead_scans(server)
        assert (bucket, key) == ("inbox", "bomb.zip") and "bomb" in error, error
        assert objects(server, "inbox")["bomb.zip"] == (None, False), "given up: unscanned, not clean"
        assert error_code(lambda: s3.get_object(Bucket="inbox", Key="bomb.zip")) == "AccessDenied"
        failed = [row["reason"] for row in audit_rows(server, event="scan.failed")]
        assert any("s3://inbox/bomb.zip" in r and "bomb" in r for r in failed), failed
    finally:
        server.stop()
