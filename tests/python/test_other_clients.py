"""s3cmd and rclone (Debian's packages, installed by scripts/test) against a real server on both
metadata backends: ls, put, get, sync both ways, multipart uploads, presigned URLs (s3cmd
signurl, rclone link), delete and bucket removal, configured as the README says."""

import filecmp
import hashlib
import os
import shutil
import subprocess

import pytest
import requests

from conftest import ACCESS_KEY, REGION, SECRET_KEY


def need(command):
    if shutil.which(command) is None:
        pytest.skip(f"!!! {command} is not installed (scripts/test installs it): its tests did NOT run !!!")


def client_env(home):
    """A clean environment: no AWS_* settings of the caller's (rclone cannot use AWS_CA_BUNDLE)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(home)
    return env


def tree(root, files):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {"a.txt": b"alpha\n", "docs/b.txt": b"bravo\n", "docs/deep/c.bin": os.urandom(4096)}


@pytest.fixture
def s3cmd(server, tmp_path):
    need("s3cmd")
    host = server.endpoint.removeprefix("http://")
    config = tmp_path / "s3cfg"
    # Path style (host_bucket = host_base) and the server's region; see the README.
    config.write_text(f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n"
                      f"host_bucket = {host}\nuse_https = False\nbucket_location = {REGION}\n")
    env = client_env(tmp_path)

    def run(*args, config_file=config):
        out = subprocess.run(["s3cmd", "-c", str(config_file), *args], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out.stdout
    return run


@pytest.fixture
def rclone(server, tmp_path):
    need("rclone")
    config = tmp_path / "rclone.conf"
    config.write_text(f"[lk]\ntype = s3\nprovider = Other\naccess_key_id = {ACCESS_KEY}\n"
                      f"secret_access_key = {SECRET_KEY}\nendpoint = {server.endpoint}\nregion = {REGION}\n"
                      "force_path_style = true\n")
    env = client_env(tmp_path)

    def run(*args):
        out = subprocess.run(["rclone", "--config", str(config), *args], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        assert "ERROR" not in out.stderr, (args, out.stderr)
        return out.stdout
    return run


def test_s3cmd_puts_gets_syncs_signs_and_deletes(s3cmd, s3, tmp_path):
    s3cmd("mb", "s3://s3cmd-bucket")
    assert "s3://s3cmd-bucket" in s3cmd("ls")
    src = tree(tmp_path / "src", FILES)
    s3cmd("put", str(src / "a.txt"), "s3://s3cmd-bucket/one/a.txt")
    s3cmd("get", "s3://s3cmd-bucket/one/a.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_bytes() == FILES["a.txt"]

    s3cmd("sync", f"{src}/", "s3://s3cmd-bucket/synced/")
    listed = s3cmd("ls", "-r", "s3://s3cmd-bucket/synced/")
    assert sorted(line.split()[-1] for line in listed.splitlines()) == [
        f"s3://s3cmd-bucket/synced/{name}" for name in sorted(FILES)]
    back = tmp_path / "back"
    s3cmd("sync", "s3://s3cmd-bucket/synced/", f"{back}/")
    assert not filecmp.dircmp(src, back).diff_files and sorted(p.name for p in back.rglob("*") if p.is_file()) == [
        "a.txt", "b.txt", "c.bin"]

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), "s3://s3cmd-bucket/big.bin")
    head = s3.head_object(Bucket="s3cmd-bucket", Key="big.bin")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == 12 * 1024 * 1024, head
    s3cmd("get", "s3://s3cmd-bucket/big.bin", str(tmp_path / "big.back"))
    assert hashlib.sha256((tmp_path / "big.back").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    url = s3cmd("signurl", "s3://s3cmd-bucket/one/a.txt", "+600").strip()
    assert requests.get(url, timeout=10).content == FILES["a.txt"]

    s3cmd("del", "s3://s3cmd-bucket/one/a.txt")
    s3cmd("del", "--recursive", "--force", "s3://s3cmd-bucket/")
    s3cmd("rb", "s3://s3cmd-bucket")
    assert "s3://s3cmd-bucket" not in s3cmd("ls")


def test_s3cmd_without_a_region_is_told_the_servers(s3cmd, server, tmp_path):
    """s3cmd signs for "US" until an AuthorizationHeaderMalformed names the region to use."""
    host = server.endpoint.removeprefix("http://")
    bare = tmp_path / "bare.cfg"
    bare.write_text(f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n"
                    f"host_bucket = {host}\nuse_https = False\n")
    s3cmd("mb", "s3://no-region-given", config_file=bare)
    assert "s3://no-region-given" in s3cmd("ls", config_file=bare)


def test_rclone_copies_syncs_links_and_purges(rclone, s3, tmp_path):
    rclone("mkdir", "lk:rclone-bucket")
    assert "rclone-bucket" in rclone("lsd", "lk:")
    src = tree(tmp_path / "src", FILES)
    rclone("copyto", str(src / "a.txt"), "lk:rclone-bucket/one/a.txt")
    rclone("copyto", "lk:rclone-bucket/one/a.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_bytes() == FILES["a.txt"]

    rclone("sync", str(src), "lk:rclone-bucket/synced")
    assert sorted(line.split(maxsplit=1)[1] for line in rclone("ls", "lk:rclone-bucket/synced").splitlines()) == sorted(
        FILES)
    (src / "a.txt").write_bytes(b"alpha, changed\n")
    (src / "docs/b.txt").unlink()
    rclone("sync", str(src), "lk:rclone-bucket/synced")
    assert s3.get_object(Bucket="rclone-bucket", Key="synced/a.txt")["Body"].read() == b"alpha, changed\n"
    rclone("check", "--download", str(src), "lk:rclone-bucket/synced")
    back = tmp_path / "back"
    rclone("sync", "lk:rclone-bucket/synced", str(back))
    assert sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file()) == ["a.txt", "docs/deep/c.bin"]

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    rclone("copyto", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(big), "lk:rclone-bucket/big.bin")
    assert s3.head_object(Bucket="rclone-bucket", Key="big.bin")["ETag"].endswith('-3"')
    rclone("check", "--download", str(big.parent), "lk:rclone-bucket", "--include", "big.bin")

    url = rclone("link", "--expire", "1h", "lk:rclone-bucket/one/a.txt").strip()
    assert requests.get(url, timeout=10).content == FILES["a.txt"]

    rclone("deletefile", "lk:rclone-bucket/one/a.txt")
    rclone("purge", "lk:rclone-bucket")
    assert "rclone-bucket" not in rclone("lsd", "lk:")
