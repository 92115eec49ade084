"""`latchkey scan` offline, on the seed walkthrough's files: a spreadsheet as CSV with names,
addresses, phones, emails and Luhn-valid test cards, an RSA key made by openssl, a
`credentials.csv`; exit codes, JSON and SARIF output, custom identifiers from a config file, and
files it does not read reported as skipped, never silently."""

import json
import subprocess
import sys
import zipfile

from conftest import BIN, Server

CARDS = ["4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005"]
SECRET = "Fk3vH1qU/2mWsZ8rTy7LbN0pQx4eKd5cJa9oRi6G"
KEY_ID = "AKIA2E3A4F5B2Q4C7D6X"


def scan(*args):
    return subprocess.run([BIN, "scan", *map(str, args)], capture_output=True, text=True, timeout=120)


def walkthrough(tmp_path):
    folder = tmp_path / "walkthrough"
    folder.mkdir()
    rows = [
        "name,address,phone,email,card",
        f"Ada Lovelace,address: 12 High Street London,+44 20 7946 0958,ada@example.org,{CARDS[0]}",
        f"Alan Turing,address: 221 Baker Street,+44 161 496 0000,alan@example.net,{CARDS[1]}",
        f"Grace Hopper,address: 500 Main Street,(415) 555-0123,grace@example.com,{CARDS[2]}",
    ]
    (folder / "customers.csv").write_text("\n".join(rows) + "\n")
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(folder / "ec2-key.pem"), "2048"],
                   check=True, capture_output=True)
    (folder / "credentials.csv").write_text(
        "User name,Password,Access key ID,Secret access key,Console login link\n"
        f"deploy,,{KEY_ID},{SECRET},https://123456789012.signin.aws.amazon.com/console\n")
    (folder / "notes.txt").write_text("Nothing sensitive here, only a meeting at 10:30 in room 4.\n")
    return folder


def by_path(report):
    return {f["path"].rsplit("/", 1)[-1]: f for f in report["files"]}


def test_the_walkthrough_files_are_each_flagged(tmp_path):
    folder = walkthrough(tmp_path)
    result = scan("--format", "json", folder)
    assert result.returncode == 1, result.stderr
    files = by_path(json.loads(result.stdout))
    assert set(files) == {"customers.csv", "ec2-key.pem", "credentials.csv", "notes.txt"}

    customers = {f["identifier"]: f for f in files["customers.csv"]["findings"]}
    assert customers["CREDIT_CARD_NUMBER"]["count"] == 3
    assert customers["CREDIT_CARD_NUMBER"]["category"] == "financial"
    assert customers["CREDIT_CARD_NUMBER"]["severity"] == "High"
    assert [(l["line"], l["sample"]) for l in customers["CREDIT_CARD_NUMBER"]["locations"]] == [
        (2, "41** **** **** **11"), (3, "55**-****-****-**44"), (4, "3*************5")]
    assert customers["EMAIL_ADDRESS"]["count"] == 3
    assert customers["PHONE_NUMBER"]["count"] == 3
    assert customers["ADDRESS"]["count"] == 3

    pem = files["ec2-key.pem"]["findings"]
    assert [(f["identifier"], f["count"], f["locations"][0]["line"]) for f in pem] == [("PEM_PRIVATE_KEY", 1, 1)]
    credentials = files["credentials.csv"]["findings"]
    assert [(f["identifier"], f["category"]) for f in credentials] == [("AWS_CREDENTIALS", "credentials")]
    assert files["notes.txt"] == {"path": str(folder / "notes.txt"), "findings": [], "skipped": None}
    # Samples are redacted: no card number, key or secret appears whole in any output.
    for fmt in ("json", "table", "sarif"):
        out = scan("--format", fmt, folder).stdout
        for secret in [*CARDS, SECRET, KEY_ID]:
            assert secret not in out, (fmt, secret)


def test_exit_codes_say_clean_findings_or_error(tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("just words\n")
    assert scan(clean).returncode == 0
    dirty = tmp_path / "dirty.txt"
    dirty.write_text("SSN 536-22-1234\n")
    result = scan(dirty)
    assert result.returncode == 1
    assert "USA_SOCIAL_SECURITY_NUMBER" in result.stdout and "536-22-1234" not in result.stdout
    missing = scan(tmp_path / "nope.txt")
    assert missing.returncode == 2
    assert "cannot read" in missing.stdout


def test_sarif_names_rules_and_regions(tmp_path):
    folder = walkthrough(tmp_path)
    log = json.loads(scan("--format", "sarif", folder).stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert {"CREDIT_CARD_NUMBER", "PEM_PRIVATE_KEY", "AWS_CREDENTIALS"} <= rule_ids
    pem = [r for r in run["results"] if r["ruleId"] == "PEM_PRIVATE_KEY"]
    assert len(pem) == 1 and pem[0]["level"] == "error"
    location = pem[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("ec2-key.pem")
    assert location["region"]["startLine"] == 1 and location["region"]["startColumn"] == 1


def test_custom_identifiers_come_from_the_config_file(tmp_path):
    config = tmp_path / "latchkey.toml"
    config.write_text(
        'listen = "127.0.0.1:9000"\n'  # the server's own settings are ignored here
        "[[custom_identifiers]]\n"
        'name = "acme-account"\n'
        "regex = 'XYZ-\\d{11}'\n"
        'keywords = ["account"]\n'
        "max_match_distance = 20\n")
    data = tmp_path / "ledger.txt"
    data.write_text("account: XYZ-12345678901\nreference XYZ-10987654321\n")
    report = json.loads(scan("--format", "json", "--config", config, data).stdout)
    findings = report["files"][0]["findings"]
    assert [(f["identifier"], f["count"], f["category"]) for f in findings] == [("acme-account", 1, "custom")]
    assert findings[0]["locations"][0]["line"] == 1

    config.write_text("[[custom_identifiers]]\nname = \"greedy\"\nregex = 'ID-\\d+'\n")
    refused = scan("--config", config, data)
    assert refused.returncode == 2
    assert '"greedy"' in refused.stderr and "bounded repetition" in refused.stderr


def test_archives_are_read_and_what_is_not_read_is_reported_as_skipped(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02SSN 536-22-1234")
    (tmp_path / "statement.pdf").write_bytes(b"%PDF-1.7\nSSN 536-22-1234")
    with zipfile.ZipFile(tmp_path / "archive.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docs/inside.txt", "SSN 536-22-1234")
        archive.writestr("photo.bin", b"\x00\x01binary")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("zeros.txt", b"a" * (256 << 20))
    assert (tmp_path / "bomb.zip").stat().st_size < 1 << 20
    (tmp_path / "link").symlink_to(tmp_path / "blob.bin")
    result = scan("--format", "json", tmp_path)
    files = by_path(json.loads(result.stdout))
    assert "binary content" in files["blob.bin"]["skipped"]
    assert "PDF" in files["statement.pdf"]["skipped"]
    assert "symbolic link" in files["link"]["skipped"]
    refused = files["bomb.zip"]["skipped"]
    assert refused.startswith("refused: ") and "bomb.zip/zeros.txt" in refused and "bomb" in refused, refused
    inside = files["archive.zip"]
    assert inside["skipped"] is None
    assert [(f["identifier"], f["locations"][0]["entry"]) for f in inside["findings"]] == [
        ("USA_SOCIAL_SECURITY_NUMBER", str(tmp_path / "archive.zip") + "/docs/inside.txt")]
    assert [(s["entry"].rsplit("/", 1)[1], "binary" in s["reason"]) for s in inside["skipped_entries"]] == [
        ("photo.bin", True)]
    assert [n for n, f in files.items() if f["findings"]] == ["archive.zip"]
    assert result.returncode == 1, "findings inside an archive count"
    table = scan(tmp_path).stdout
    assert "archive.zip/docs/inside.txt: 1:5" in table, table


def test_the_server_reads_the_same_tables_and_refuses_a_bad_identifier_at_start(tmp_path):
    server = Server(tmp_path / "data", config={
        "custom_identifiers": [{"name": "acme-account", "regex": "XYZ-\\d{11}", "keywords": ["account"]}],
        "allow_list": {"values": ["XYZ-00000000000"]},
        "disabled_identifiers": ["IP_ADDRESS"],
    })
    server.start()
    try:
        assert server.client().list_buckets()["Buckets"] == []
    finally:
        server.stop()
    bad = tmp_path / "bad.toml"
    bad.write_text("[[custom_identifiers]]\nname = \"greedy\"\nregex = 'ID-\\d+'\n")
    out = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
                          "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "scanner's settings are refused" in out.stderr and '"greedy"' in out.stderr, out.stderr


def test_a_2_gib_file_is_scanned_in_bounded_memory(tmp_path):
    """Two findings 2 GiB apart, one straddling a chunk border, in a file read in bounded memory:
    the peak RSS of the scan is measured in a process whose only child it is, and printed."""
    big = tmp_path / "big.log"
    line = b"2026-12-05T10:00:00Z INFO request served from cache path=/api/v1/items/42 took 12ms\n"
    block = line * (1024 * 1024 // len(line))
    blocks = 2 * 1024 ** 3 // len(block) + 1
    email = b"jane.doe@example.org"
    with open(big, "wb") as f:
        f.write(b"contact " + email + b"\n")
        for n in range(blocks):
            f.write(block)
            if n == blocks // 2:
                # A card number whose digits straddle the scanner's 1 MiB chunk border.
                f.write(b"x" * (1024 * 1024 - (f.tell() % (1024 * 1024)) - 8) + b"card 4111 1111 1111 1111\n")
        f.write(b"card 5555 5555 5555 4444\n")
    assert big.stat().st_size > 2 * 1024 ** 3
    measure = ("import resource, subprocess, sys; "
               "out = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stdout.write(out.stdout); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", measure, BIN, "scan", "--format", "json", str(big)],
                         capture_output=True, text=True, timeout=600)
    peak_mib = int(out.stderr.strip().splitlines()[-1]) / 1024
    print(f"latchkey scan of {big.stat().st_size / 2 ** 30:.2f} GiB: peak RSS {peak_mib:.1f} MiB")
    report = json.loads(out.stdout)
    found = {f["identifier"]: f for f in report["files"][0]["findings"]}
    assert found["EMAIL_ADDRESS"]["count"] == 1 and found["EMAIL_ADDRESS"]["locations"][0]["line"] == 1
    cards = found["CREDIT_CARD_NUMBER"]
    assert cards["count"] == 2, cards
    assert cards["locations"][1]["offset"] > 2 * 1024 ** 3, "the last line, past 2 GiB"
    assert peak_mib < 64, f"peak RSS {peak_mib:.1f} MiB"


def test_the_table_escapes_control_characters_from_file_names(tmp_path):
    """A file (or archive entry) named with an escape sequence cannot write it to the terminal."""
    (tmp_path / "evil\x1b[31mred.txt").write_text("card 4111 1111 1111 1111\n")
    with zipfile.ZipFile(tmp_path / "names.zip", "w") as archive:
        archive.writestr("a\x1b]0;pwned\x07.txt", "card 4111 1111 1111 1111\n")
    table = scan(tmp_path).stdout
    assert "\x1b" not in table and "\x07" not in table, table
    assert "evil\\u{1b}[31mred.txt" in table and "a\\u{1b}]0;pwned\\u{7}.txt" in table, table
