"""A labelled corpus for the scanner: positives of every managed identifier, each made with its
own check digits computed here (an implementation independent of the engine's), and hard
negatives: the same numbers with one digit changed, UUIDs, hashes, base64 blobs, dates, order
and tracking numbers, documentation keys. Seeded: the same seed writes the same lines.

    python3 scan_corpus.py OUT_DIR [SEED]   # OUT_DIR/corpus.txt and OUT_DIR/labels.json

labels.json maps each line number (1-based) to the identifier that must be found on it, or to
null for a line on which nothing may be found.
"""

import base64
import json
import random
import string
import sys
import uuid

UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits


def digits(rng, n):
    return "".join(rng.choice(DIGITS) for _ in range(n))


def token(rng, n, alphabet=UPPER + LOWER + DIGITS):
    """A random token that mixes upper case, lower case and digits, as generated secrets do."""
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c in UPPER for c in value) and any(c in LOWER for c in value) and any(c in DIGITS for c in value):
            return value


def luhn_check(body):
    total = 0
    for i, d in enumerate(reversed(body)):
        d = int(d)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def changed(rng, number):
    """`number` with one of its digits replaced by another: every check here notices."""
    positions = [i for i, c in enumerate(number) if c.isdigit()]
    i = rng.choice(positions)
    other = rng.choice([d for d in DIGITS if d != number[i]])
    return number[:i] + other + number[i + 1:]


# Positives, one generator per identifier: (text of the line, the value in it).

def card(rng):
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("3528", 16), ("62", 16), ("4", 13)])
    body = prefix + digits(rng, length - len(prefix) - 1)
    number = body + luhn_check(body)
    if length == 16 and rng.random() < 0.6:
        sep = rng.choice(" -")
        number = sep.join(number[i:i + 4] for i in range(0, 16, 4))
    elif length == 15 and rng.random() < 0.5:
        number = f"{number[:4]} {number[4:10]} {number[10:]}"
    return f"{rng.choice(['card', 'Visa', 'payment card', 'charged to'])} {number}", number


def iban(rng):
    country, bban = rng.choice([("DE", lambda: digits(rng, 18)), ("GB", lambda: "".join(rng.choice(UPPER) for _ in range(4)) + digits(rng, 14)),
                                ("NL", lambda: "".join(rng.choice(UPPER) for _ in range(4)) + digits(rng, 10)), ("FR", lambda: digits(rng, 23))])
    bban = bban()
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    value = f"{country}{98 - number % 97:02d}{bban}"
    if rng.random() < 0.5:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return f"IBAN {value}", value


def aba(rng):
    while True:
        body = rng.choice(["0", "1", "2", "3", "6", "7"]) + digits(rng, 7)
        if not (int(body[:2]) <= 12 or 21 <= int(body[:2]) <= 32 or 61 <= int(body[:2]) <= 72):
            continue
        weights = [3, 7, 1, 3, 7, 1, 3, 7]
        total = sum(int(d) * w for d, w in zip(body, weights))
        value = body + str((10 - total % 10) % 10)
        return f"routing number {value}", value


def swift(rng):
    value = "".join(rng.choice(UPPER) for _ in range(4)) + rng.choice(["DE", "GB", "FR", "US"]) + rng.choice(UPPER) + rng.choice(DIGITS)
    if rng.random() < 0.5:
        value += digits(rng, 3)
    return f"SWIFT code: {value}", value


def ssn(rng):
    while True:
        area = rng.randrange(1, 900)
        if area == 666:
            continue
        value = f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"
        if value not in ("078-05-1120", "219-09-9999", "123-45-6789"):
            return f"SSN {value}", value


def itin(rng):
    value = f"9{digits(rng, 2)}-{rng.randrange(70, 89)}-{digits(rng, 4)}"
    return f"ITIN {value}", value


def nino(rng):
    while True:
        prefix = rng.choice("ABCEGHJKLMNOPRSTWXYZ") + rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    d = digits(rng, 6)
    value = f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}" if rng.random() < 0.5 else f"{prefix}{d}{rng.choice('ABCD')}"
    return f"National Insurance number {value}", value


def nhs(rng):
    while True:
        body = digits(rng, 9)
        check = 11 - sum(int(d) * w for d, w in zip(body, range(10, 1, -1))) % 11
        if check == 10:
            continue
        value = body + str(0 if check == 11 else check)
        value = f"{value[:3]} {value[3:6]} {value[6:]}"
        return f"NHS number {value}", value


def sin(rng):
    body = rng.choice("1234567") + digits(rng, 7)
    value = body + luhn_check(body)
    value = f"{value[:3]} {value[3:6]} {value[6:]}"
    return f"SIN: {value}", value


def dni(rng):
    number = rng.randrange(10**7, 10**8)
    value = f"{number:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"
    return f"DNI {value}", value


def nie(rng):
    lead = rng.randrange(3)
    rest = rng.randrange(10**6, 10**7)
    number = int(f"{lead}{rest:07d}")
    value = f"{'XYZ'[lead]}{rest:07d}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"
    return f"NIE {value}", value


ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def codice_fiscale(rng):
    body = ("".join(rng.choice(UPPER) for _ in range(6)) + digits(rng, 2) + rng.choice("ABCDEHLMPRST")
            + f"{rng.randrange(1, 72):02d}" + rng.choice(UPPER) + digits(rng, 3))
    value_of = lambda c: int(c) if c.isdigit() else ord(c) - 65
    total = sum(ODD[value_of(c)] if i % 2 == 0 else value_of(c) for i, c in enumerate(body))
    value = body + chr(65 + total % 26)
    return f"codice fiscale {value}", value


def nir(rng):
    body = f"{rng.choice('12')}{digits(rng, 2)}{rng.randrange(1, 13):02d}{rng.randrange(1, 96):02d}{digits(rng, 3)}{digits(rng, 3)}"
    value = f"{body}{97 - int(body) % 97:02d}"
    value = f"{value[0]} {value[1:3]} {value[3:5]} {value[5:7]} {value[7:10]} {value[10:13]} {value[13:]}"
    return f"numero de securite sociale {value}", value


def steuer_id(rng):
    while True:
        pool = rng.sample(DIGITS, 9)
        pool.append(rng.choice(pool))
        rng.shuffle(pool)
        if pool[0] != "0":
            break
    product = 10
    for d in pool:
        s = (int(d) + product) % 10 or 10
        product = (2 * s) % 11
    check = 11 - product
    value = "".join(pool) + str(0 if check == 10 else check)
    return f"Steuer-ID {value}", value


def bsn(rng):
    while True:
        body = digits(rng, 8)
        last = sum(int(d) * w for d, w in zip(body, range(9, 1, -1))) % 11
        if last < 10:
            return f"BSN {body}{last}", body + str(last)


def pesel(rng):
    month = rng.randrange(1, 13) + rng.choice([0, 20])
    body = f"{digits(rng, 2)}{month:02d}{rng.randrange(1, 29):02d}{digits(rng, 4)}"
    total = sum(int(d) * w for d, w in zip(body, [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]))
    value = body + str((10 - total % 10) % 10)
    return f"PESEL {value}", value


VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]
VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def aadhaar(rng):
    body = rng.choice("23456789") + digits(rng, 10)
    c = 0
    for i, d in enumerate(reversed(body)):
        c = VD[c][VP[(i + 1) % 8][int(d)]]
    value = body + str(VINV[c])
    if rng.random() < 0.5:
        value = f"{value[:4]} {value[4:8]} {value[8:]}"
    return f"Aadhaar {value}", value


def tfn(rng):
    while True:
        body = digits(rng, 8)
        last = sum(int(d) * w for d, w in zip(body, [1, 4, 3, 7, 5, 8, 6, 9])) % 11
        if last < 10:
            value = body + str(last)
            value = f"{value[:3]} {value[3:6]} {value[6:]}"
            return f"TFN {value}", value


def email(rng):
    local = "".join(rng.choice(LOWER + DIGITS) for _ in range(6))
    value = f"{rng.choice(['ada', 'alan', 'grace', 'linus'])}.{local}@{rng.choice(['example.org', 'corp.example.com', 'mail.test'])}"
    return f"contact {value} please", value


def phone(rng):
    value = rng.choice([
        f"+44 20 {digits(rng, 4)} {digits(rng, 4)}", f"+1 (415) 555-{digits(rng, 4)}", f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
        f"+49 30 {digits(rng, 7)}", f"(212) 555-{digits(rng, 4)}", f"020 7946 {digits(rng, 4)}", f"07700 9{digits(rng, 5)}",
    ])
    return f"call {value} today", value


def dob(rng):
    y, m, d = rng.randrange(1940, 2010), rng.randrange(1, 13), rng.randrange(1, 29)
    value = rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{d} March {y}"])
    return f"{rng.choice(['Date of birth:', 'DOB', 'born'])} {value}", value


def address(rng):
    value = rng.choice([f"{rng.randrange(1, 999)} {rng.choice(['Baker', 'High', 'Elm', 'Main'])} {rng.choice(['Street', 'Road', 'Avenue', 'Lane'])}",
                        rng.choice(["SW1A 1AA", "M1 1AE", "EC1A 1BB", "B33 8TH"])])
    return f"{rng.choice(['Address:', 'ship to', 'postcode'])} {value}", value


def ip(rng):
    value = f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"login from {value} at noon", value


def aws_pair(rng):
    key = "AKIA" + "".join(rng.choice(UPPER + "234567") for _ in range(16))
    secret = token(rng, 40, UPPER + LOWER + DIGITS + "/+")
    return rng.choice([f"deploy,,{key},{secret},https://signin.example", f"aws_access_key_id={key} aws_secret_access_key={secret}"]), key


def aws_secret(rng):
    secret = token(rng, 40, UPPER + LOWER + DIGITS + "/+")
    return f"aws_secret_access_key = {secret}", secret


def pem(rng):
    kind = rng.choice(["RSA ", "EC ", ""])
    return f"-----BEGIN {kind}PRIVATE KEY-----\\n{token(rng, 64, UPPER + LOWER + DIGITS + '+/')}\\n", kind


def simple(prefix, make):
    return lambda rng: (f"key {prefix}{make(rng)}", None)


def jwt(rng):
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    value = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': digits(rng, 8)})}.{token(rng, 43, UPPER + LOWER + DIGITS + '-_')}"
    return f"Authorization: Bearer {value}", value


POSITIVES = {
    "AWS_CREDENTIALS": aws_pair,
    "AWS_SECRET_ACCESS_KEY": aws_secret,
    "PEM_PRIVATE_KEY": pem,
    "OPENSSH_PRIVATE_KEY": lambda rng: (f"-----BEGIN OPENSSH PRIVATE KEY-----\\n{token(rng, 70, UPPER + LOWER + DIGITS + '+/')}\\n", None),
    "PGP_PRIVATE_KEY": lambda rng: (f"-----BEGIN PGP PRIVATE KEY BLOCK-----\\n\\n{token(rng, 64, UPPER + LOWER + DIGITS + '+/')}\\n", None),
    "PUTTY_PRIVATE_KEY": lambda rng: ("PuTTY-User-Key-File-3: ssh-ed25519\\nEncryption: none\\nComment: key\\nPublic-Lines: 2", None),
    "GITHUB_TOKEN": simple("ghp_", lambda rng: token(rng, 36)),
    "GITLAB_TOKEN": simple("glpat-", lambda rng: token(rng, 20)),
    "SLACK_TOKEN": simple("xoxb-", lambda rng: f"{digits(rng, 10)}-{token(rng, 24)}"),
    "STRIPE_API_KEY": simple("sk_live_", lambda rng: token(rng, 24)),
    "GOOGLE_API_KEY": simple("AIza", lambda rng: token(rng, 35)),
    "GOOGLE_OAUTH_TOKEN": simple("GOCSPX-", lambda rng: token(rng, 28)),
    "JSON_WEB_TOKEN": jwt,
    "AZURE_STORAGE_KEY": lambda rng: (f"AccountName=acct;AccountKey={token(rng, 86, UPPER + LOWER + DIGITS + '+/')}==;", None),
    "CONNECTION_STRING_PASSWORD": lambda rng: (f"DATABASE_URL=postgres://app:{token(rng, 12)}@db.internal:5432/app", None),
    "PASSWORD_ASSIGNMENT": lambda rng: (f'db_password = "{token(rng, 10)}!"', None),
    "CREDIT_CARD_NUMBER": card,
    "BANK_ACCOUNT_NUMBER_IBAN": iban,
    "USA_ROUTING_NUMBER": aba,
    "SWIFT_CODE": swift,
    "EMAIL_ADDRESS": email,
    "PHONE_NUMBER": phone,
    "DATE_OF_BIRTH": dob,
    "ADDRESS": address,
    "IP_ADDRESS": ip,
    "USA_SOCIAL_SECURITY_NUMBER": ssn,
    "USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER": itin,
    "UK_NATIONAL_INSURANCE_NUMBER": nino,
    "UK_NHS_NUMBER": nhs,
    "CANADA_SOCIAL_INSURANCE_NUMBER": sin,
    "SPAIN_DNI": dni,
    "SPAIN_NIE": nie,
    "ITALY_FISCAL_CODE": codice_fiscale,
    "FRANCE_NATIONAL_IDENTIFICATION_NUMBER": nir,
    "GERMANY_TAX_IDENTIFICATION_NUMBER": steuer_id,
    "NETHERLANDS_BSN": bsn,
    "POLAND_PESEL": pesel,
    "INDIA_AADHAAR_NUMBER": aadhaar,
    "AUSTRALIA_TAX_FILE_NUMBER": tfn,
}

# Identifiers whose values carry a check: one digit changed, with the same words around it,
# must not be found.
CHECKED = ["CREDIT_CARD_NUMBER", "BANK_ACCOUNT_NUMBER_IBAN", "USA_ROUTING_NUMBER", "UK_NHS_NUMBER",
           "CANADA_SOCIAL_INSURANCE_NUMBER", "SPAIN_DNI", "SPAIN_NIE", "FRANCE_NATIONAL_IDENTIFICATION_NUMBER",
           "GERMANY_TAX_IDENTIFICATION_NUMBER", "NETHERLANDS_BSN", "POLAND_PESEL", "INDIA_AADHAAR_NUMBER",
           "AUSTRALIA_TAX_FILE_NUMBER"]


def negatives(rng):
    """Lines on which nothing may be found."""
    lines = []
    for _ in range(40):
        lines += [
            f"request {uuid.UUID(int=rng.getrandbits(128))} done",
            f"commit {rng.getrandbits(160):040x}",
            f"sha256 {rng.getrandbits(256):064x}",
            f"blob {base64.b64encode(rng.randbytes(45)).decode()}",
            f"meeting on 2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} in room {rng.randrange(100)}",
            f"invoice dated {rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/2026 total {rng.randrange(10**4)}.{rng.randrange(100):02d}",
            f"order ORD-2026-{digits(rng, 8)} shipped",
            f"tracking 1Z{''.join(rng.choice(UPPER + DIGITS) for _ in range(16))}",
            f"parcel {digits(rng, 4)} {digits(rng, 4)} {digits(rng, 4)}",
            f"invoice {digits(rng, 9)} paid",
            f"SSN {rng.choice(['000', '666'])}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}",
        ]
        for identifier in CHECKED:
            line, value = POSITIVES[identifier](rng)
            lines.append(line.replace(value, changed(rng, value)))
    lines += [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "stripe.api_key = sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "-----BEGIN RSA PRIVATE KEY-----",
        'password = "********"',
        "password: ${DB_PASSWORD}",
    ]
    return lines


def generate(seed=7, per_identifier=60):
    rng = random.Random(seed)
    labelled = []
    for identifier, make in POSITIVES.items():
        for _ in range(per_identifier):
            labelled.append((make(rng)[0], identifier))
    labelled += [(line, None) for line in negatives(rng)]
    rng.shuffle(labelled)
    return labelled


def write(out_dir, seed=7):
    labelled = generate(seed)
    text, labels = [], {}
    for entry, identifier in labelled:
        # A multi-line value (PEM, PuTTY) is labelled on its first line; nothing may be found
        # on the others.
        for i, part in enumerate(entry.replace("\\n", "\n").rstrip("\n").split("\n")):
            text.append(part)
            labels[len(text)] = identifier if i == 0 else None
    (out_dir / "corpus.txt").write_text("\n".join(text) + "\n")
    (out_dir / "labels.json").write_text(json.dumps(labels))


if __name__ == "__main__":
    from pathlib import Path
    write(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7)
