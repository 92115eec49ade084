"""Nothing of an unauthenticated request's body is held in memory: S3 POST forms (PostObject),
which s3s would read whole to find their signature, are judged on their fields and refused before
a byte of their file is read."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

from conftest import Server

MIB = 1024 * 1024


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_twenty_unsigned_200_mib_form_posts_hold_no_memory(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        server.client().create_bucket(Bucket="forms")
        big = tmp_path / "big.bin"
        with open(big, "wb") as f:
            f.truncate(200 * MIB)  # sparse: costs no disk

        def post(_):
            out = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "120",
                 "-F", "key=upload.bin", "-F", f"file=@{big}", f"{server.endpoint}/forms"],
                capture_output=True, text=True, timeout=150)
            return out.stdout

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(post, range(20)))
        # Each is refused on its fields, before its file is read, and its connection closed: a
        # client still sending its 200 MiB may see the close (curl: 000, or the 100 Continue it
        # got last) before the 403. None is stored.
        assert statuses.count("403") >= 10 and set(statuses) <= {"403", "000", "100"}, statuses
        assert peak_rss_mib(server.proc.pid) < 150
        # A form whose signature is wrong is refused before its file is read as well; a file of
        # up to 64 MiB is read and dropped so that the client gets its answer.
        small = tmp_path / "small.bin"
        with open(small, "wb") as f:
            f.truncate(8 * MIB)
        for file, answered in ((big, False), (small, True)):
            forged = subprocess.run(
                ["curl", "-sS", "-F", "key=k", "-F", "AWSAccessKeyId=LKTESTROOTACCESSKEY1", "-F", "signature=x",
                 "-F", "policy=e30=", "-F", f"file=@{file}", "-H", "Authorization: AWS4-HMAC-SHA256 Credential="
                 "LKTESTROOTACCESSKEY1/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                 f"{server.endpoint}/forms"], capture_output=True, text=True, timeout=150)
            if answered:
                assert "<Code>SignatureDoesNotMatch</Code>" in forged.stdout, forged.stdout + forged.stderr
        assert peak_rss_mib(server.proc.pid) < 150
        assert "Contents" not in server.client().list_objects_v2(Bucket="forms")
    finally:
        server.stop()
