"""`latchkey share create|list|revoke` against a real server, with credentials from a profile."""

import json
import subprocess
import time

import requests

from conftest import BIN
from test_shares import api


def share(server, env, *args):
    return subprocess.run([BIN, "share", *args, "--endpoint-url", server.endpoint],
                          env=env, capture_output=True, text=True, timeout=30)


def test_create_list_revoke(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="board/minutes.txt", Body=b"confidential minutes")
    env = server.cli_env(tmp_path / "home")

    made = share(server, env, "create", f"s3://{bucket}/board/minutes.txt", "--expires-in", "2h",
                 "--max-uses", "2", "--allow-cidr", "127.0.0.0/8", "--label", "for the board")
    assert made.returncode == 0, made.stderr
    fields = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
    assert list(fields) == ["id", "url", "api_url", "expires_at", "max_uses"]
    assert fields["max_uses"] == "2"
    token = fields["url"].rsplit("/", 1)[1]
    assert fields["api_url"].endswith(f"nonce={token}") and len(token) == 43
    expires = time.mktime(time.strptime(fields["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(expires - time.time() - 7200) < 60
    assert requests.get(fields["api_url"], timeout=10).content == b"confidential minutes"

    as_json = share(server, env, "create", f"s3://{bucket}/board/minutes.txt", "--json")
    created = json.loads(as_json.stdout)
    assert created["max_uses"] == 1 and len(created["token"]) == 43

    listed = share(server, env, "list", f"s3://{bucket}/board/")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2 and fields["id"] in lines[0] and "1/2 uses left" in lines[0]
    assert token not in listed.stdout

    revoked = share(server, env, "revoke", created["id"])
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked: {created['id']}"
    assert requests.get(created["api_url"], timeout=10).status_code == 403
    assert len(share(server, env, "list", f"s3://{bucket}").stdout.strip().splitlines()) == 1
    everything = share(server, env, "list", f"s3://{bucket}", "--all", "--json")
    states = {s["id"]: s["state"] for s in json.loads(everything.stdout)["shares"]}
    assert states == {fields["id"]: "active", created["id"]: "revoked"}


def test_links_to_a_changed_object_are_listed_as_changed(server, s3, bucket, tmp_path):
    env = server.cli_env(tmp_path / "home")
    for key in ["changed/overwritten.txt", "changed/deleted.txt", "changed/kept.txt"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"version one")
    made = {key: json.loads(share(server, env, "create", f"s3://{bucket}/changed/{key}", "--json").stdout)["id"]
            for key in ["overwritten.txt", "deleted.txt", "kept.txt"]}
    s3.put_object(Bucket=bucket, Key="changed/overwritten.txt", Body=b"version two")
    s3.delete_object(Bucket=bucket, Key="changed/deleted.txt")

    everything = share(server, env, "list", f"s3://{bucket}/changed/", "--all", "--json")
    assert everything.returncode == 0, everything.stderr
    states = {s["id"]: s["state"] for s in json.loads(everything.stdout)["shares"]}
    assert states == {made["overwritten.txt"]: "object_changed", made["deleted.txt"]: "object_changed",
                      made["kept.txt"]: "active"}
    active = json.loads(share(server, env, "list", f"s3://{bucket}/changed/", "--json").stdout)["shares"]
    assert [s["id"] for s in active] == [made["kept.txt"]]
    one = share(server, env, "list", f"s3://{bucket}/changed/overwritten.txt", "--all", "--json")
    assert [s["state"] for s in json.loads(one.stdout)["shares"]] == ["object_changed"]
    assert api(server, "GET", f"/-/shares/{made['deleted.txt']}").json()["state"] == "object_changed"
    assert api(server, "GET", f"/-/shares/{made['kept.txt']}").json()["state"] == "active"


def test_mistakes_are_explained(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    env = server.cli_env(tmp_path / "home")
    missing = share(server, env, "create", f"s3://{bucket}/absent")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    vague = share(server, env, "create", f"s3://{bucket}/k", "--expires-in", "soon")
    assert vague.returncode != 0 and "such as 90s, 15m, 1h or 2d" in vague.stderr
    too_long = share(server, env, "create", f"s3://{bucket}/k", "--expires-in", "30d")
    assert too_long.returncode != 0 and "expires_in must be between 1 and 604800" in too_long.stderr
    unknown = share(server, env, "revoke", "shr_000000000000000000000000")
    assert unknown.returncode != 0 and "404" in unknown.stderr
    no_creds = subprocess.run([BIN, "share", "list", "--endpoint-url", server.endpoint],
                              env={"HOME": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=30)
    assert no_creds.returncode != 0 and "no AWS credentials found" in no_creds.stderr


def test_upload_links(server, s3, bucket, tmp_path):
    env = server.cli_env(tmp_path / "home")
    made = share(server, env, "create", f"s3://{bucket}/incoming/", "--upload", "--max-size", "1KiB",
                 "--content-type", "text/csv", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert (created["method"], created["max_size"], created["content_types"]) == ("PUT", 1024, ["text/csv"])
    sent = requests.put(created["api_url"], params={"name": "rows.csv"}, data=b"a,b\n",
                        headers={"Content-Type": "text/csv"}, timeout=10)
    assert sent.status_code == 201
    assert s3.get_object(Bucket=bucket, Key="incoming/rows.csv")["Body"].read() == b"a,b\n"

    keyed = share(server, env, "create", f"s3://{bucket}/exact.txt", "--upload")
    fields = dict(line.split(": ", 1) for line in keyed.stdout.strip().splitlines())
    assert requests.put(fields["api_url"], data=b"exact", timeout=10).status_code == 201
    assert s3.get_object(Bucket=bucket, Key="exact.txt")["Body"].read() == b"exact"

    not_upload = share(server, env, "create", f"s3://{bucket}/exact.txt", "--max-size", "1KiB")
    assert not_upload.returncode != 0 and "--upload" in not_upload.stderr
    vague = share(server, env, "create", f"s3://{bucket}/in/", "--upload", "--max-size", "lots")
    assert vague.returncode != 0 and "such as 10MiB" in vague.stderr
