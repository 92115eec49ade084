"""Presigned URLs that AWS cannot control: `latchkey presign --max-uses N` adds a signed
`X-Latchkey-Max-Uses` parameter (it cannot be raised or removed) and the server counts the uses
atomically, across replicas sharing PostgreSQL; once spent, the URL gets the usual 403, audited.
Ordinary presigned URLs are not counted."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import BIN, audit_rows
from test_bad_input import error_code


def presign(server, home, target, *args):
    out = subprocess.run([BIN, "presign", target, "--endpoint-url", server.endpoint, *args],
                         env=server.cli_env(home), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_three_use_url_works_three_times_under_fifty_concurrent_requests(server, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="report.pdf", Body=b"%PDF quarterly")
    url = presign(server, tmp_path / "home", f"s3://{bucket}/report.pdf", "--max-uses", "3")
    assert "X-Latchkey-Max-Uses=3" in url
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: requests.get(url, timeout=30), range(50)))
    assert sorted(a.status_code for a in answers) == [200] * 3 + [403] * 47
    assert all(a.content == b"%PDF quarterly" for a in answers if a.status_code == 200)
    refused = next(a for a in answers if a.status_code == 403)
    assert error_code(refused) == "AccessDenied" and "used" not in refused.text, "the reason is not told"
    assert requests.get(url, timeout=10).status_code == 403, "and stays refused"
    reasons = [row["reason"] for row in audit_rows(server, "presigned.denied")]
    assert sum("report.pdf: the presigned URL's 3 uses are spent" in r for r in reasons) == 48

    # The count cannot be raised or removed: the signature covers it.
    for forged in (url.replace("X-Latchkey-Max-Uses=3", "X-Latchkey-Max-Uses=300"),
                   url.replace("&X-Latchkey-Max-Uses=3", "").replace("X-Latchkey-Max-Uses=3&", "")):
        resp = requests.get(forged, timeout=10)
        assert (resp.status_code, error_code(resp)) == (403, "SignatureDoesNotMatch"), forged

    # Review finding: the name percent-encoded is the same parameter to the signature check,
    # and is counted as such.
    once = presign(server, tmp_path / "home", f"s3://{bucket}/report.pdf", "--max-uses", "1")
    encoded = once.replace("X-Latchkey-Max-Uses", "X-Latchkey-Max-Use%73")
    assert [requests.get(encoded, timeout=10).status_code for _ in range(2)] == [200, 403]
    assert requests.get(once, timeout=10).status_code == 403, "the same URL, spent"

    # Review finding: beside a SigV2 signature, made-up X-Amz-* parameters are not counted on.
    v2 = server.client(signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "report.pdf"})
    smuggled = (v2 + "&X-Latchkey-Max-Uses=1&X-Amz-Signature=aa&X-Amz-Date=29991205T000000Z"
                "&X-Amz-Expires=9223372036854775807")
    resp = requests.get(smuggled, timeout=10)
    assert (resp.status_code, error_code(resp)) == (400, "InvalidRequest")

    # An ordinary presigned URL is not counted.
    plain = presign(server, tmp_path / "home", f"s3://{bucket}/report.pdf")
    assert [requests.get(plain, timeout=10).status_code for _ in range(5)] == [200] * 5


def test_ranges_heads_and_other_regions_cannot_stretch_a_count(server, s3, bucket, tmp_path):
    """Each allowed request spends a use, a Range request too (as documented); a HEAD on a GET
    URL or a signature for another region is refused before anything is spent."""
    s3.put_object(Bucket=bucket, Key="video.bin", Body=bytes(range(256)) * 64)
    url = presign(server, tmp_path / "home", f"s3://{bucket}/video.bin", "--max-uses", "2")
    assert requests.head(url, timeout=10).status_code == 403, "signed for GET"
    ranges = [requests.get(url, headers={"Range": f"bytes={i}-{i + 9}"}, timeout=10) for i in (0, 10)]
    assert [r.status_code for r in ranges] == [206, 206]
    assert ranges[1].content == bytes(range(10, 20))
    assert requests.get(url, headers={"Range": "bytes=20-29"}, timeout=10).status_code == 403, "two uses, spent"
    elsewhere = subprocess.run([BIN, "presign", f"s3://{bucket}/video.bin", "--max-uses", "5",
                                "--endpoint-url", server.endpoint],
                               env={**server.cli_env(tmp_path / "home"), "AWS_REGION": "eu-west-1"},
                               capture_output=True, text=True, timeout=30).stdout.strip()
    assert "eu-west-1" in elsewhere
    assert requests.get(elsewhere, timeout=10).status_code in (400, 403), "another region's signature"


def test_a_counted_upload_url_takes_one_upload(server, s3, bucket, tmp_path):
    url = presign(server, tmp_path / "home", f"s3://{bucket}/inbox/form.csv", "--method", "PUT", "--max-uses", "1")
    assert requests.put(url, data=b"a,b\n", timeout=10).status_code == 200
    assert requests.put(url, data=b"overwritten", timeout=10).status_code == 403
    assert s3.get_object(Bucket=bucket, Key="inbox/form.csv")["Body"].read() == b"a,b\n"


def test_uses_are_counted_across_replicas(replicas, tmp_path):
    first, second = replicas
    s3 = first.client()
    s3.create_bucket(Bucket="counted")
    s3.put_object(Bucket="counted", Key="k", Body=b"shared")
    url = presign(first, tmp_path / "home", "s3://counted/k", "--max-uses", "4")
    path = url.split(first.endpoint, 1)[1]
    # The signature covers the Host header: both replicas are asked as the first's address.
    host = {"Host": first.endpoint.split("://", 1)[1]}
    two = presign(first, tmp_path / "home", "s3://counted/k", "--max-uses", "2").split(first.endpoint, 1)[1]
    assert [requests.get(s.endpoint + two, headers=host, timeout=10).status_code for s in replicas] == [200, 200]
    assert [requests.get(s.endpoint + two, headers=host, timeout=10).status_code for s in replicas] == [403, 403]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: requests.get((first, second)[i % 2].endpoint + path, headers=host,
                                                       timeout=30), range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 4 + [403] * 16
    assert {error_code(a) for a in answers if a.status_code == 403} == {"AccessDenied"}, "spent, not mis-signed"


def test_the_cli_refuses_a_count_below_one(tmp_path, server):
    out = subprocess.run([BIN, "presign", "s3://b/k", "--max-uses", "0"], env=server.cli_env(tmp_path / "h"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--max-uses" in out.stderr
