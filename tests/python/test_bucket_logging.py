"""Server access logs delivered into a bucket (PutBucketLogging), in S3's server-access-log format:
set and read with boto3, one line per request on the logged bucket (signed, presigned, refused,
share links), field by field as S3 writes them, object names as S3 names them, never a
credential, nothing a client sends can shift a field or forge a line, and what waits in memory
is delivered at shutdown."""

import re
import shlex
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, Server, audit_rows
from test_identity import allow, client, error_code, new_user, signed_request
from test_shares import mint

LINE = re.compile(r'^(\S+) (\S+) \[([^\]]+)\] (.*)$')
NAME = re.compile(r"^access/\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9A-F]{16}$")
ROOT_ARN = "arn:aws:iam::000000000000:root"


def logging_server(tmp_path, source, flush=1):
    """A server delivering logs every `flush` seconds, with buckets `source` and `logs`; and a client."""
    server = Server(tmp_path / "data", config={"bucket_log_flush_secs": flush}).start()
    s3 = server.client()
    try:
        s3.create_bucket(Bucket=source)
        s3.create_bucket(Bucket="logs")
    except Exception:
        server.stop()
        raise
    return server, s3


def enable(s3, source, target, prefix="access/", key_format=None):
    enabled = {"TargetBucket": target, "TargetPrefix": prefix}
    if key_format:
        enabled["TargetObjectKeyFormat"] = key_format
    s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={"LoggingEnabled": enabled})


def log_objects(s3, bucket, prefix):
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode() for o in listed}


def fields(line):
    """The 26 fields of a line: the time's brackets and quoted fields kept whole."""
    owner, bucket, at, rest = LINE.match(line).groups()
    return [owner, bucket, at, *shlex.split(rest, posix=True)]


def wait_for_lines(s3, bucket, prefix, request_ids, timeout=15):
    """Every delivered line, once the lines of all `request_ids` have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        objects = log_objects(s3, bucket, prefix)
        lines = [fields(line) for text in objects.values() for line in text.splitlines()]
        if set(request_ids) <= {f[5] for f in lines} or time.monotonic() > deadline:
            return objects, lines
        time.sleep(0.3)


def test_requests_on_a_logged_bucket_arrive_in_s3_format_in_its_target(tmp_path):
    server, s3 = logging_server(tmp_path, "source")
    try:
        assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="source")
        enable(s3, "source", "logs")
        enabled = s3.get_bucket_logging(Bucket="source")["LoggingEnabled"]
        assert (enabled["TargetBucket"], enabled["TargetPrefix"]) == ("logs", "access/")
        assert enabled["TargetObjectKeyFormat"] == {"SimplePrefix": {}}

        ids = {}
        put = s3.put_object(Bucket="source", Key="dir/a b.txt", Body=b"twelve bytes")
        ids["put"] = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
        url = server.client(signature_version="s3v4").generate_presigned_url("get_object", Params={"Bucket": "source", "Key": "dir/a b.txt"})
        signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1)
        referer = f"https://user:pw@r.test/page?X-Amz-Signature={signature}#frag"
        got = requests.get(url, headers={"User-Agent": 'agent "quoted"\tand tabbed\\', "Referer": referer}, timeout=10)
        assert got.content == b"twelve bytes"
        ids["presigned"] = got.headers["x-amz-request-id"]
        forged = signed_request(server, "GET", "/source/dir/a%20b.txt", ACCESS_KEY, "not-the-secret")
        assert forged.status_code == 403
        ids["forged"] = forged.headers["x-amz-request-id"]
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket="source", Key="nothing-here")
        ids["missing"] = missing.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
        link = mint(server, "source", "dir/a b.txt")
        redeemed = requests.get(link["api_url"], timeout=10)
        assert redeemed.content == b"twelve bytes"
        ids["share"] = redeemed.headers["x-amz-request-id"]
        s3.put_object(Bucket="logs", Key="unlogged", Body=b"x")  # the target is not logged itself
        # Non-canonical paths: no line under another bucket, no token (both checked below).
        for odd in ("//source/dir/a%20b.txt", "/./source/x", "/%2D/s/" + link["token"], "/logs/../source/x"):
            assert requests.get(server.endpoint + odd, timeout=10).status_code >= 400, odd

        objects, lines = wait_for_lines(s3, "logs", "access/", ids.values())
        assert objects and all(NAME.match(name) for name in objects), list(objects)
        by_id = {f[5]: f for f in lines}
        assert set(ids.values()) <= set(by_id), "every request's line arrived"
        assert all(len(f) == 26 for f in lines), [f for f in lines if len(f) != 26]
        assert all(f[1] == "source" and f[0] == "000000000000" for f in lines)
        assert all(re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", f[2]) for f in lines)

        put_line = by_id[ids["put"]]
        assert put_line[3:8] == ["127.0.0.1", ROOT_ARN, ids["put"], "REST.PUT.OBJECT", "dir/a%20b.txt"]
        assert put_line[8] == "PUT /source/dir/a%20b.txt HTTP/1.1"
        assert (put_line[9], put_line[10], put_line[19], put_line[21]) == ("200", "-", "SigV4", "AuthHeader")
        assert put_line[22] == f"127.0.0.1:{server.port}"

        presigned = by_id[ids["presigned"]]
        assert (presigned[6], presigned[9], presigned[11]) == ("REST.GET.OBJECT", "200", "12")
        assert presigned[8] == "GET /source/dir/a%20b.txt HTTP/1.1", "no query string: no signature"
        assert (presigned[15], presigned[16]) == ("https://r.test/page", "agent %22quoted%22%09and tabbed%5C")
        assert (presigned[19], presigned[21]) == ("SigV4", "QueryString")

        refused = by_id[ids["forged"]]
        assert (refused[4], refused[9], refused[10]) == ("-", "403", "SignatureDoesNotMatch")
        assert by_id[ids["missing"]][6:11] == ["REST.HEAD.OBJECT", "nothing-here", "HEAD /source/nothing-here HTTP/1.1",
                                                "404", "NoSuchKey"]
        share = by_id[ids["share"]]
        assert (share[6], share[7], share[9], share[21]) == ("LATCHKEY.GET.SHARE", "dir/a%20b.txt", "200", "-")
        assert link["token"] not in share[8] and "/-/access-object" in share[8]

        everything = "".join(objects.values())
        for secret in (signature, link["token"], "not-the-secret"):
            assert secret not in everything
        assert not any(f[6] == "REST.PUT.OBJECT" and f[7] == "unlogged" for f in lines)

        # Off again: later requests are not logged.
        s3.put_bucket_logging(Bucket="source", BucketLoggingStatus={})
        assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="source")
        after = s3.put_object(Bucket="source", Key="after", Body=b"x")["ResponseMetadata"]["RequestId"]
        time.sleep(2.5)
        _, lines = wait_for_lines(s3, "logs", "access/", [], timeout=0)
        assert after not in {f[5] for f in lines}
    finally:
        server.stop()


def test_partitioned_names_and_delivery_at_shutdown(tmp_path):
    server, s3 = logging_server(tmp_path, "src", flush=3600)
    try:
        enable(s3, "src", "logs", prefix="p/",
               key_format={"PartitionedPrefix": {"PartitionDateSource": "EventTime"}})
        assert s3.get_bucket_logging(Bucket="src")["LoggingEnabled"]["TargetObjectKeyFormat"] == \
            {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}}
        request_id = s3.put_object(Bucket="src", Key="k", Body=b"x")["ResponseMetadata"]["RequestId"]
        assert log_objects(s3, "logs", "p/") == {}, "an hour between deliveries"
        assert server.stop() == 0
        server.start()
        objects = log_objects(s3, "logs", "p/")
        day = time.strftime("%Y/%m/%d", time.gmtime())
        [(name, text)] = objects.items()
        assert re.fullmatch(rf"p/000000000000/us-east-1/src/{day}/{day.replace('/', '-')}-00-00-00-[0-9A-F]{{16}}",
                            name), name
        assert request_id in text
    finally:
        server.stop()


def test_delivery_stops_when_whoever_set_the_target_may_no_longer_write_there(tmp_path):
    server, s3 = logging_server(tmp_path, "src")
    try:
        name, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:PutBucketLogging", "Resource": "arn:aws:s3:::src"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs/alice/*"}]})
        enable(client(server, "s3", key_id, secret), "src", "logs", prefix="alice/")
        first = s3.put_object(Bucket="src", Key="one", Body=b"1")["ResponseMetadata"]["RequestId"]
        objects, _ = wait_for_lines(s3, "logs", "alice/", [first])
        assert any(first in text for text in objects.values()), "delivered while allowed"
        client(server, "iam").delete_user_policy(UserName=name, PolicyName="p")
        later = s3.put_object(Bucket="src", Key="two", Body=b"2")["ResponseMetadata"]["RequestId"]
        time.sleep(3)
        assert not any(later in text for text in log_objects(s3, "logs", "alice/").values())
        denials = [row["reason"] for row in audit_rows(server, "policy.denied")]
        assert any(r.startswith("s3:PutObject on arn:aws:s3:::logs/alice/") for r in denials), denials
    finally:
        server.stop()


def test_each_replica_delivers_its_own_lines(pg_url, tmp_path):
    """Two replicas on one PostgreSQL: logging set through one applies on the other at once, and
    each delivers the lines of the requests it served, under names of its own."""
    master = {"LATCHKEY_MASTER_KEY": "ef" * 32}
    pair = [Server(tmp_path / "data", meta_url=pg_url, env=master, config={"bucket_log_flush_secs": 1}).start()
            for _ in range(2)]
    try:
        first, second = (srv.client() for srv in pair)
        first.create_bucket(Bucket="src")
        first.create_bucket(Bucket="logs")
        enable(first, "src", "logs")
        ids = [client.put_object(Bucket="src", Key=f"k{i}", Body=b"x")["ResponseMetadata"]["RequestId"]
               for i, client in enumerate((first, second, second))]
        objects, lines = wait_for_lines(first, "logs", "access/", ids)
        assert set(ids) <= {f[5] for f in lines}, "the second replica logged as soon as the setting was made"
        assert len(objects) >= 2 and all(NAME.match(name) for name in objects), list(objects)
        assert sum(ids[0] in text for text in objects.values()) == 1, "delivered once"
    finally:
        for srv in pair:
            srv.stop()


def test_a_target_must_exist_and_be_writable_by_whoever_sets_it(server, s3):
    source, target = f"s-{uuid.uuid4().hex[:10]}", f"l-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    assert error_code(lambda: enable(s3, source, "no-such-bucket-here")) == "InvalidTargetBucketForLogging"
    grant = [{"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
              "Permission": "READ"}]
    assert error_code(lambda: s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": target, "TargetPrefix": "x/", "TargetGrants": grant}})) == "AccessControlListNotSupported"
    # A user who may configure logging but not write into the target cannot point logs there.
    _, key_id, secret = new_user(server, allow(["s3:PutBucketLogging", "s3:GetBucketLogging"],
                                               [f"arn:aws:s3:::{source}"]))
    user = client(server, "s3", key_id, secret)
    assert error_code(lambda: enable(user, source, target)) == "AccessDenied"
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
    _, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutBucketLogging", "Resource": f"arn:aws:s3:::{source}"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{target}/logs/*"}]})
    writer = client(server, "s3", key_id, secret)
    assert error_code(lambda: enable(writer, source, target, prefix="elsewhere/")) == "AccessDenied"
    enable(writer, source, target, prefix="logs/")
    assert s3.get_bucket_logging(Bucket=source)["LoggingEnabled"]["TargetPrefix"] == "logs/"
