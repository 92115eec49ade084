"""A text corpus for bench/scan.sh: log-like and prose lines with numbers, dates, UUIDs and
hashes (what real text is full of), and one line in a thousand sensitive (cards, emails, SSNs,
AWS key pairs, phones). Seeded, so every run scans the same bytes. A block of lines is generated
once and repeated to the size asked for.

    python3 scan_corpus.py OUT SIZE_MIB
"""

import random
import sys
import uuid

WORDS = ("the request was served from cache after the upstream answered slowly while the worker "
         "pool drained its queue and the scheduler moved on to the next batch of jobs").split()


def clean(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return (f"2026-12-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z INFO "
                f"request id={uuid.UUID(int=rng.getrandbits(128))} path=/api/v1/items/{rng.randrange(10**6)} "
                f"took {rng.randrange(500)}ms status={rng.choice((200, 201, 304, 404))}")
    if kind == 1:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 18))).capitalize() + "."
    if kind == 2:
        return f"commit {rng.getrandbits(160):040x} order {rng.randrange(10**9)} qty {rng.randrange(100)} total {rng.randrange(10**5) / 100}"
    return f"sku,{rng.randrange(10**6)},{rng.choice(WORDS)},{rng.randrange(10**4)},{rng.randrange(1, 13)}/{rng.randrange(1, 29)}/2026"


def sensitive(rng):
    return rng.choice((
        "card 4111 1111 1111 1111 expires 12/29",
        "contact ada.lovelace@example.org for access",
        "SSN 536-22-1234 on file",
        "aws_access_key_id=AKIA2E3A4F5B2Q4C7D6X aws_secret_access_key=Fk3vH1qU/2mWsZ8rTy7LbN0pQx4eKd5cJa9oRi6G",
        "call +44 20 7946 0958 after six",
    ))


def main():
    out, size = sys.argv[1], int(sys.argv[2]) << 20
    rng = random.Random(13)
    lines = [sensitive(rng) if rng.random() < 0.001 else clean(rng) for _ in range(200_000)]
    block = ("\n".join(lines) + "\n").encode()
    with open(out, "wb") as f:
        written = 0
        while written < size:
            part = block[: size - written]
            f.write(part)
            written += len(part)


if __name__ == "__main__":
    main()
