"""Delimiter listings over keys at the top of Unicode, with boto3 and the pinned AWS CLI."""

import subprocess


def test_cli_lists_a_prefix_whose_key_follows_char_max(server, s3, bucket, tmp_path):
    # `in/` + U+10FFFF + `x` sorts after `in/` + U+10FFFF, where the listing once resumed after
    # rolling up `in/`: it met the key again and never ended.
    s3.put_object(Bucket=bucket, Key="in/\U0010ffffx", Body=b"x")
    s3.put_object(Bucket=bucket, Key="top.txt", Body=b"y")
    out = subprocess.run(
        ["aws", "--endpoint-url", server.endpoint, "s3", "ls", f"s3://{bucket}/"],
        env=server.cli_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[-1] for line in lines] == ["in/", "top.txt"], out.stdout
    assert lines[0].split() == ["PRE", "in/"]
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["in/"] and listed["IsTruncated"]
