"""Precision and recall of every managed identifier on a labelled corpus (scan_corpus.py: values
made with check digits computed independently of the engine, and hard negatives), through
`latchkey scan`: each must be at least 0.97."""

import json
import subprocess

import scan_corpus
from conftest import BIN

TARGET = 0.97


def measure(tmp_path, seed):
    scan_corpus.write(tmp_path, seed)
    labels = {int(line): identifier for line, identifier in json.loads((tmp_path / "labels.json").read_text()).items()}
    config = tmp_path / "scan.toml"
    config.write_text("max_locations = 1000000\n")
    out = subprocess.run([BIN, "scan", "--format", "json", "--config", str(config), str(tmp_path / "corpus.txt")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    findings = json.loads(out.stdout)["files"][0]["findings"]
    found = {(location["line"], f["identifier"]) for f in findings for location in f["locations"]}
    assert sum(f["count"] for f in findings) == len(found), "every match has its location"
    figures = {}
    for identifier in scan_corpus.POSITIVES:
        labelled = {line for line, label in labels.items() if label == identifier}
        reported = {line for line, name in found if name == identifier}
        true = len(labelled & reported)
        figures[identifier] = (true / len(reported) if reported else 0.0, true / len(labelled),
                               sorted(reported - labelled)[:5], sorted(labelled - reported)[:5])
    return figures


def test_every_identifier_is_precise_and_complete(tmp_path):
    for seed in (7, 8):
        directory = tmp_path / str(seed)
        directory.mkdir()
        figures = measure(directory, seed)
        lines = (directory / "corpus.txt").read_text().split("\n")
        failing = {
            identifier: (f"precision {p:.3f} recall {r:.3f}; wrongly found on {[lines[n - 1] for n in wrong]}, "
                         f"missed on {[lines[n - 1] for n in missed]}")
            for identifier, (p, r, wrong, missed) in figures.items() if p < TARGET or r < TARGET
        }
        assert not failing, json.dumps(failing, indent=1)
