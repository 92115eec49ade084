"""The tamper-evident audit trail: events are linked into a SHA-256 hash chain and its head is
signed with the server's Ed25519 key every digest interval; `latchkey audit verify` recomputes
the chain and checks the digests, and names the first broken link after any edit, deletion,
insertion or reordering. A digest's signature checks with OpenSSL and the key published at
/-/audit/public-key."""

import hashlib
import json
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (ACCESS_KEY, BIN, PG_REQUIRED, REGION, Server, audit_rows, new_pg_schema, pg_schema_url,
                      pg_unavailable, psql)
from test_identity import client, new_user
from test_counted_presign import presign
from test_presign_revoke import revoke

EVENT_COLUMNS = "chain_pos, at_ms, event, share_id, principal, source_ip, user_agent, reason"


@pytest.fixture(params=["sqlite", "postgres"])
def audited(request, tmp_path):
    """A server of its own (the test edits its store) that signs a digest every second."""
    meta_url = schema = None
    if request.param == "postgres":
        if psql("SELECT 1").returncode != 0:
            pg_unavailable(PG_REQUIRED, "PostgreSQL is not reachable")
        schema = new_pg_schema()
        meta_url = pg_schema_url(schema)
    srv = Server(tmp_path / "data", meta_url=meta_url, config={"audit_digest_interval_secs": 1}).start()
    yield srv
    srv.stop()
    if schema:
        psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def sql(server, statement):
    """Runs `statement` ({t} stands for the schema prefix) on the server's store; the rows."""
    schema = server.schema()
    if schema:
        out = psql(statement.format(t=f"{schema}."))
        assert out.returncode == 0, out.stderr
        return [line.split("|") for line in out.stdout.removesuffix("\n").split("\n")]
    db = sqlite3.connect(server.data_dir / "meta.db", timeout=10)
    try:
        with db:
            rows = []
            for one in statement.format(t="").split(";"):
                rows = db.execute(one).fetchall()
            return [[("" if v is None else str(v)) for v in row] for row in rows]
    finally:
        db.close()


def hexed(server, column):
    """`column` (bytes) as lowercase hex, in the server's SQL."""
    return f"encode({column}, 'hex')" if server.meta_url else f"lower(hex({column}))"


def unhexed(server, digits):
    return f"decode('{digits}', 'hex')" if server.meta_url else f"X'{digits}'"


def verify_args(server, public_key):
    store = ["--meta-url", server.meta_url] if server.meta_url else ["--data-dir", str(server.data_dir)]
    return [BIN, "audit", "verify", *store, "--public-key", str(public_key)]


def verify(server, public_key):
    return subprocess.run(verify_args(server, public_key), capture_output=True, text=True, timeout=60)


def link(prev_hash, row):
    """The documented link: SHA-256 over the previous hash and the JSON array of the fields."""
    pos, at_ms, event, share_id, principal, source_ip, user_agent, reason = row
    fields = [pos, at_ms, event, share_id, principal, source_ip, user_agent, reason]
    return hashlib.sha256(prev_hash + json.dumps(fields, separators=(",", ":")).encode()).digest()


def wait_until_signed(server):
    """Until every event is linked and a digest signs the head; the head position."""
    deadline = time.monotonic() + 20
    while True:
        pending = sql(server, "SELECT count(*) FROM {t}audit_events WHERE chain_pos IS NULL")[0][0]
        head = sql(server, "SELECT max(chain_pos) FROM {t}audit_events")[0][0]
        signed = sql(server, "SELECT max(last_pos) FROM {t}audit_digests")[0][0]
        if pending == "0" and head and head == signed:
            return int(head)
        assert time.monotonic() < deadline, (pending, head, signed)
        time.sleep(0.2)


def a_signed_revocation(server, tmp_path, bucket):
    """Records a revocation (an audit event) and waits until it is linked and signed; the
    revoked URL."""
    server.client().create_bucket(Bucket=bucket)
    url = presign(server, tmp_path / "home", f"s3://{bucket}/k")
    assert revoke(server, tmp_path / "home", url).returncode == 0
    wait_until_signed(server)
    return url


def test_any_edit_deletion_insertion_or_reordering_is_named(audited, tmp_path):
    s3 = audited.client()
    s3.create_bucket(Bucket="ledger")
    s3.put_object(Bucket="ledger", Key="k", Body=b"v")
    home = tmp_path / "home"
    for _ in range(3):
        url = presign(audited, home, "s3://ledger/k")
        assert revoke(audited, home, url).returncode == 0
        for _ in range(2):
            assert requests.get(url, timeout=10).status_code == 403
    head = wait_until_signed(audited)
    assert head >= 9
    public_key = tmp_path / "audit.pem"
    public_key.write_text(requests.get(f"{audited.endpoint}/-/audit/public-key", timeout=10).text)

    # Tampering happens with the server stopped (a running one would refuse to sign over it).
    assert audited.stop() == 0
    out = verify(audited, public_key)
    assert out.returncode == 0 and "audit trail intact" in out.stdout, (out.stdout, out.stderr)
    assert f"{head} events" in out.stdout

    # The documented hash recomputes from the rows.
    rows = sql(audited, f"SELECT {EVENT_COLUMNS}, {hexed(audited, 'hash')} FROM {{t}}audit_events ORDER BY chain_pos")
    prev = bytes(32)
    for row in rows:
        prev = link(prev, [int(row[0]), int(row[1])] + [v or None for v in row[2:8]])
        assert prev.hex() == row[8], row

    def broken(why):
        out = verify(audited, public_key)
        assert out.returncode == 1 and why in out.stdout, (out.stdout, out.stderr)

    # An edit.
    original = sql(audited, "SELECT reason FROM {t}audit_events WHERE chain_pos = 3")[0][0]
    sql(audited, "UPDATE {t}audit_events SET reason = 'nothing happened' WHERE chain_pos = 3")
    broken("audit event 3: does not match")
    sql(audited, f"UPDATE {{t}}audit_events SET reason = '{original}' WHERE chain_pos = 3")
    assert verify(audited, public_key).returncode == 0, "restored"

    # A reordering: events 4 and 5 swap places.
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -chain_pos WHERE chain_pos IN (4, 5)")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = CASE chain_pos WHEN -4 THEN 5 ELSE 4 END "
                 "WHERE chain_pos IN (-4, -5)")
    broken("audit event 4: does not match")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -chain_pos WHERE chain_pos IN (4, 5)")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = CASE chain_pos WHEN -4 THEN 5 ELSE 4 END "
                 "WHERE chain_pos IN (-4, -5)")
    assert verify(audited, public_key).returncode == 0, "restored"

    # An insertion, linked correctly to the event before it: the next one no longer links.
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -(chain_pos + 1) WHERE chain_pos >= 3")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -chain_pos WHERE chain_pos < 0")
    prev2 = sql(audited, f"SELECT {hexed(audited, 'hash')} FROM {{t}}audit_events WHERE chain_pos = 2")[0][0]
    fake = [3, int(time.time() * 1000), "presigned.revoked", None, "arn:aws:iam::000000000000:root", None, None,
            "nothing"]
    forged = link(bytes.fromhex(prev2), fake)
    sql(audited, f"INSERT INTO {{t}}audit_events (at_ms, event, principal, reason, chain_pos, hash) VALUES "
                 f"({fake[1]}, '{fake[2]}', '{fake[4]}', 'nothing', 3, {unhexed(audited, forged.hex())})")
    broken("audit event 4: does not match")
    sql(audited, "DELETE FROM {t}audit_events WHERE chain_pos = 3")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -(chain_pos - 1) WHERE chain_pos >= 4")
    sql(audited, "UPDATE {t}audit_events SET chain_pos = -chain_pos WHERE chain_pos < 0")
    assert verify(audited, public_key).returncode == 0, "restored"

    # A deletion in the middle, and of the last signed event.
    sql(audited, "DELETE FROM {t}audit_events WHERE chain_pos = 4")
    broken("audit event 4: is missing")
    sql(audited, "DELETE FROM {t}audit_events WHERE chain_pos >= 4")
    broken("audit event 4: is missing: a digest signs events up to it")

    # Another key does not verify the digests.
    other = Server(tmp_path / "other").start()
    try:
        stranger = tmp_path / "stranger.pem"
        stranger.write_text(requests.get(f"{other.endpoint}/-/audit/public-key", timeout=10).text)
    finally:
        other.stop()
    out = verify(audited, stranger)
    assert out.returncode == 1 and "signature does not verify" in out.stdout, out.stdout


def test_a_pinned_digest_tells_when_the_newest_events_and_digests_are_removed(audited, tmp_path):
    """Whoever can write the store can cut the newest events off together with the digests that
    sign them; an auditor who noted a digest (`--expect-digest`) sees it gone."""
    a_signed_revocation(audited, tmp_path, "pinned")
    public_key = tmp_path / "audit.pem"
    public_key.write_text(requests.get(f"{audited.endpoint}/-/audit/public-key", timeout=10).text)
    assert audited.stop() == 0
    out = verify(audited, public_key)
    pin = out.stdout.split("latest digest: ", 1)[1].split(" ", 1)[0]
    first = sql(audited, "SELECT max(first_pos) FROM {t}audit_digests")[0][0]
    sql(audited, f"DELETE FROM {{t}}audit_digests WHERE first_pos >= {first}")
    sql(audited, f"DELETE FROM {{t}}audit_events WHERE chain_pos >= {first}")
    assert verify(audited, public_key).returncode == 0, "a shorter chain, as far as it shows"
    out = subprocess.run([*verify_args(audited, public_key), "--expect-digest", pin],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"the digest {pin} the auditor expects is not among" in out.stdout, out.stdout
    bad_pin = subprocess.run([*verify_args(audited, public_key), "--expect-digest", "xyz"],
                             capture_output=True, text=True, timeout=60)
    assert bad_pin.returncode == 2 and "at least 16 hex digits" in bad_pin.stderr


def test_the_server_does_not_sign_over_removed_digests(audited, tmp_path):
    url = a_signed_revocation(audited, tmp_path, "signed")
    sql(audited, "DELETE FROM {t}audit_digests")
    assert requests.get(url, timeout=10).status_code == 403, "one more event"
    wait_for_event = time.monotonic() + 10
    while not [r for r in audit_rows(audited, "audit.broken")]:
        assert time.monotonic() < wait_for_event, "the removal was not noticed"
        time.sleep(0.2)
    assert "that this server signed are gone" in audit_rows(audited, "audit.broken")[0]["reason"]
    time.sleep(1.5)
    assert sql(audited, "SELECT count(*) FROM {t}audit_digests")[0][0] == "0", "nothing signed over it"


def test_a_digest_signature_checks_with_openssl(audited, tmp_path):
    a_signed_revocation(audited, tmp_path, "digested")
    pem = requests.get(f"{audited.endpoint}/-/audit/public-key", timeout=10)
    assert pem.status_code == 200 and pem.text.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "pub.pem").write_text(pem.text)
    at_ms, first, last, last_hash, prev, signature = sql(
        audited, f"SELECT at_ms, first_pos, last_pos, {hexed(audited, 'last_hash')}, "
                 f"{hexed(audited, 'prev_signature')}, {hexed(audited, 'signature')} "
                 "FROM {t}audit_digests ORDER BY first_pos DESC LIMIT 1")[0]
    message = f"latchkey-audit-digest-v1\n{at_ms}\n{first}\n{last}\n{last_hash}\n{prev or '-'}\n"
    (tmp_path / "digest.txt").write_text(message)
    (tmp_path / "digest.sig").write_bytes(bytes.fromhex(signature))
    check = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin",
             "-in", str(tmp_path / "digest.txt"), "-sigfile", str(tmp_path / "digest.sig")]
    out = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Signature Verified Successfully" in out.stdout, (out.stdout, out.stderr)
    (tmp_path / "digest.txt").write_text(message.replace(f"\n{last}\n", f"\n{int(last) + 1}\n"))
    out = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0, "a changed digest does not verify"


def test_two_replicas_writing_at_once_make_one_chain(replicas, tmp_path):
    """Both replicas record events at once; one at a time links them, each signs at shutdown, and
    the chain verifies (with the data dir's key: the replicas share it)."""
    first, second = replicas
    s3 = first.client()
    s3.create_bucket(Bucket="busy")
    s3.put_object(Bucket="busy", Key="k", Body=b"v")
    url = presign(first, tmp_path / "home", "s3://busy/k")
    assert revoke(first, tmp_path / "home", url).returncode == 0
    path = url.split(first.endpoint, 1)[1]
    host = {"Host": first.endpoint.split("://", 1)[1]}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: requests.get((first, second)[i % 2].endpoint + path, headers=host,
                                                       timeout=30).status_code, range(60)))
    assert answers == [403] * 60
    for replica in replicas:
        assert replica.stop() == 0
    recorded = int(sql(first, "SELECT count(*) FROM {t}audit_events")[0][0])
    assert recorded >= 61
    out = subprocess.run([BIN, "audit", "verify", "--meta-url", first.meta_url, "--data-dir", str(first.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert f"intact: {recorded} events" in out.stdout and "0 events not signed yet" in out.stdout, out.stdout


def audit_cli(server, home, *args, env=None):
    return subprocess.run([BIN, "audit", *args, "--endpoint-url", server.endpoint],
                          env=env or server.cli_env(home), capture_output=True, text=True, timeout=60)


def test_security_events_are_recorded_and_read_through_the_api(audited, tmp_path):
    """auth failures, configuration changes, IAM changes, STS credentials and root's use reach
    the trail; `audit query|tail|verify|export` read it through the signed API, for root and for
    principals granted latchkey:ReadAudit only."""
    home = tmp_path / "home"
    s3 = audited.client()
    s3.create_bucket(Bucket="watched")
    s3.put_bucket_policy(Bucket="watched", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::watched"}]}))
    wrong = boto3.client("s3", endpoint_url=audited.endpoint, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key="not-the-secret", region_name=REGION,
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError):
        wrong.list_buckets()
    iam = client(audited, "iam")
    _, auditor_key, auditor_secret = new_user(audited, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "latchkey:ReadAudit", "Resource": "*"}]})
    _, nobody_key, nobody_secret = new_user(audited)
    client(audited, "sts", nobody_key, nobody_secret).get_session_token(DurationSeconds=900)
    assert iam.list_users()["Users"]
    wait_until_signed(audited)

    out = audit_cli(audited, home, "query", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    for kind in ("auth.failed", "config.changed", "iam.changed", "sts.issued", "root.used"):
        assert kind in kinds, (kind, kinds)
    failed = next(e for e in events if e["event"] == "auth.failed")
    assert "SignatureDoesNotMatch" in failed["reason"] and ACCESS_KEY in failed["reason"]
    assert [e["reason"] for e in events if e["event"] == "config.changed"] == [
        "CreateBucket watched", "PutBucketPolicy watched"]
    assert any(e["reason"].startswith("CreateUser UserName=") for e in events if e["event"] == "iam.changed")
    assert not any(e["reason"].startswith("List") for e in events if e["event"] == "iam.changed"), "reads are not"
    assert [e["pos"] for e in events] == list(range(1, len(events) + 1))

    out = audit_cli(audited, home, "query", "--event", "config.changed")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2 and "PutBucketPolicy watched" in out.stdout
    out = audit_cli(audited, home, "tail", "-n", "2", "--json")
    assert [json.loads(line)["pos"] for line in out.stdout.splitlines()] == [events[-2]["pos"], events[-1]["pos"]]

    # Verified through the server, with the key saved from it.
    (tmp_path / "audit.pem").write_text(requests.get(f"{audited.endpoint}/-/audit/public-key", timeout=10).text)
    out = audit_cli(audited, home, "verify", "--public-key", str(tmp_path / "audit.pem"))
    assert out.returncode == 0 and f"intact: {len(events)} events" in out.stdout, (out.stdout, out.stderr)

    # Exported into a bucket.
    out = audit_cli(audited, home, "export", "--to", "s3://watched/audit/2026")
    assert out.returncode == 0, out.stderr
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="watched", Prefix="audit/")["Contents"])
    assert listed == [f"audit/2026/audit-{1:012}-{len(events):012}.jsonl", "audit/2026/digests.json",
                      "audit/2026/public-key.pem"]
    exported = s3.get_object(Bucket="watched", Key=listed[0])["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in exported] == events

    # Who may read it.
    def as_user(key, secret, name):
        user_home = tmp_path / name
        env = audited.cli_env(user_home)
        (user_home / ".aws" / "credentials").write_text(
            f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
        return env

    out = audit_cli(audited, None, "query", env=as_user(auditor_key, auditor_secret, "auditor"))
    assert out.returncode == 0 and "config.changed" in out.stdout, out.stderr
    out = audit_cli(audited, None, "query", env=as_user(nobody_key, nobody_secret, "nobody"))
    assert out.returncode != 0 and "403" in out.stderr, (out.stdout, out.stderr)
