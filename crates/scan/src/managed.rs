//! The managed identifiers: credentials, financial data, personal data and national IDs, each
//! with its pattern, keywords and check. Patterns are compiled without Unicode (`\d` is
//! `[0-9]`, `\b` an ASCII word boundary) and every repetition is bounded, so that a match is
//! never longer than the engine's window overlap. Where two patterns can match at one place,
//! the more specific comes first (the engine tries the others when the first one's check fails).

use crate::checksum as check;
use crate::identifier::{Category, Check, Definition, Severity};

/// A managed identifier as written in the table below.
struct Managed {
    id: &'static str,
    category: Category,
    severity: Severity,
    pattern: Option<&'static str>,
    near_keyword: Option<&'static str>,
    keywords: &'static [&'static str],
    max_distance: usize,
    ignore_words: &'static [&'static str],
    check: Option<Check>,
}

/// What most identifiers leave at its default.
const BASE: Managed = Managed {
    id: "",
    category: Category::Personal,
    severity: Severity::High,
    pattern: None,
    near_keyword: None,
    keywords: &[],
    max_distance: 50,
    ignore_words: &[],
    check: None,
};

/// Secrets printed in vendors' documentation: matched by the patterns, never real.
const DOCUMENTATION_WORDS: &[&str] = &["EXAMPLE", "example", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"];

/// The end of a token whose alphabet includes `-` or `/`, where `\b` does not apply.
macro_rules! token_end {
    ($class:literal) => {
        concat!("(?:[^", $class, "]|\\z)")
    };
}

const TABLE: &[Managed] = &[
    // Credentials.
    Managed {
        id: "AWS_CREDENTIALS",
        category: Category::Credentials,
        pattern: Some(concat!(
            r"\b(?:AKIA|ASIA)[A-Z2-7]{16}\b[\s\S]{0,160}?[^A-Za-z0-9/+][A-Za-z0-9/+]{40}",
            token_end!("A-Za-z0-9/+=")
        )),
        // Documentation's pairs are told by the key and the secret, not by what lies between.
        check: Some(check::aws_key_pair),
        ..BASE
    },
    Managed {
        id: "AWS_SECRET_ACCESS_KEY",
        category: Category::Credentials,
        near_keyword: Some(concat!(r"[^A-Za-z0-9/+][A-Za-z0-9/+]{40}", token_end!("A-Za-z0-9/+="))),
        keywords: &[
            "aws_secret_access_key",
            "secret access key",
            "secretaccesskey",
            "secret_access_key",
            "aws_secret_key",
            "aws secret",
        ],
        max_distance: 60,
        ignore_words: DOCUMENTATION_WORDS,
        check: Some(check::aws_secret),
        ..BASE
    },
    Managed {
        id: "PEM_PRIVATE_KEY",
        category: Category::Credentials,
        // A line break after the header may be written `\n` (a key inside JSON), the body may be
        // indented (YAML) or follow on the same line.
        pattern: Some(
            r"-----BEGIN (?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----(?:[ \t]{0,16}(?:\r?\n|\\n)(?:[ \t]{0,16}[A-Za-z-]{1,20}: [^\r\n]{1,100}(?:\r?\n|\\n)){0,3}(?:\r?\n|\\n)?|[ \t])[ \t]{0,16}[A-Za-z0-9+/]{40}",
        ),
        ..BASE
    },
    Managed {
        id: "OPENSSH_PRIVATE_KEY",
        category: Category::Credentials,
        pattern: Some(r"-----BEGIN OPENSSH PRIVATE KEY-----[ \t]{0,16}(?:\r?\n|\\n|[ \t])[ \t]{0,16}[A-Za-z0-9+/]{40}"),
        ..BASE
    },
    Managed {
        id: "PGP_PRIVATE_KEY",
        category: Category::Credentials,
        pattern: Some(
            r"-----BEGIN PGP PRIVATE KEY BLOCK-----[ \t]{0,16}(?:\r?\n|\\n)(?:[ \t]{0,16}[A-Za-z]{1,20}: [^\r\n]{1,100}(?:\r?\n|\\n)){0,5}(?:\r?\n|\\n)?[ \t]{0,16}[A-Za-z0-9+/]{40}",
        ),
        ..BASE
    },
    Managed {
        id: "PUTTY_PRIVATE_KEY",
        category: Category::Credentials,
        pattern: Some(
            r"PuTTY-User-Key-File-[23]: [a-z0-9-]{3,40}\r?\nEncryption: [a-z0-9-]{3,40}\r?\nComment: [^\r\n]{0,200}\r?\nPublic-Lines: \d{1,3}",
        ),
        ..BASE
    },
    Managed {
        id: "GITHUB_TOKEN",
        category: Category::Credentials,
        pattern: Some(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
        ..BASE
    },
    Managed {
        id: "GITLAB_TOKEN",
        category: Category::Credentials,
        pattern: Some(concat!(r"\bglpat-[A-Za-z0-9_-]{20}", token_end!("A-Za-z0-9_-"))),
        ..BASE
    },
    Managed {
        id: "SLACK_TOKEN",
        category: Category::Credentials,
        pattern: Some(concat!(
            r"\bxox[abposr]-[0-9A-Za-z-]{10,72}",
            token_end!("0-9A-Za-z-"),
            r"|https://hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}\b"
        )),
        ..BASE
    },
    Managed {
        id: "STRIPE_API_KEY",
        category: Category::Credentials,
        pattern: Some(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b"),
        ignore_words: DOCUMENTATION_WORDS,
        ..BASE
    },
    Managed {
        id: "GOOGLE_API_KEY",
        category: Category::Credentials,
        pattern: Some(concat!(r"\bAIza[0-9A-Za-z_-]{35}", token_end!("0-9A-Za-z_-"))),
        ..BASE
    },
    Managed {
        id: "GOOGLE_OAUTH_TOKEN",
        category: Category::Credentials,
        pattern: Some(concat!(
            r"\bGOCSPX-[0-9A-Za-z_-]{28}",
            token_end!("0-9A-Za-z_-"),
            r"|\bya29\.[0-9A-Za-z_-]{20,400}",
            token_end!("0-9A-Za-z_-")
        )),
        ..BASE
    },
    Managed {
        id: "JSON_WEB_TOKEN",
        category: Category::Credentials,
        // Starts only where a token can (`-` and `_` are token bytes, so `\b` would let every
        // `eyJ` inside a long token start a candidate).
        pattern: Some(r"(?:^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,800}\.eyJ[A-Za-z0-9_-]{4,4000}\.[A-Za-z0-9_-]{16,700}"),
        check: Some(check::jwt),
        ..BASE
    },
    Managed {
        id: "AZURE_STORAGE_KEY",
        category: Category::Credentials,
        pattern: Some(r"AccountKey=[A-Za-z0-9+/]{86}=="),
        ..BASE
    },
    Managed {
        id: "CONNECTION_STRING_PASSWORD",
        category: Category::Credentials,
        pattern: Some(r#"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@"']{1,64}:[^\s/@"']{1,128}@[A-Za-z0-9.-]{1,253}"#),
        check: Some(check::real_password),
        ..BASE
    },
    Managed {
        id: "PASSWORD_ASSIGNMENT",
        category: Category::Credentials,
        severity: Severity::Medium,
        pattern: Some(
            r#"(?i)\b[a-z_]{0,20}(?:password|passwd|pwd|secret_key|client_secret|api_key|apikey)["']?[ \t]{0,3}[:=][ \t]{0,3}["']?[^\s"',;]{6,128}"#,
        ),
        check: Some(check::real_password),
        ..BASE
    },
    // Financial.
    Managed {
        id: "CREDIT_CARD_NUMBER",
        category: Category::Financial,
        pattern: Some(r"\b(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})\b"),
        keywords: &[
            "card",
            "credit",
            "visa",
            "mastercard",
            "amex",
            "american express",
            "discover",
            "jcb",
            "diners",
            "ccn",
            "cc number",
            "pan",
            "payment",
        ],
        max_distance: 50,
        check: Some(check::payment_card),
        ..BASE
    },
    Managed {
        id: "BANK_ACCOUNT_NUMBER_IBAN",
        category: Category::Financial,
        // The last short group is digits: a word after the number (`BIC`, `EUR`) is not taken in.
        pattern: Some(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?\d{1,3})?\b"),
        check: Some(check::iban),
        ..BASE
    },
    Managed {
        id: "USA_ROUTING_NUMBER",
        category: Category::Financial,
        severity: Severity::Medium,
        near_keyword: Some(r"\b\d{9}\b"),
        keywords: &["routing", "aba", "rtn", "transit number", "routing number", "routing no"],
        check: Some(check::aba_routing),
        ..BASE
    },
    Managed {
        id: "SWIFT_CODE",
        category: Category::Financial,
        severity: Severity::Low,
        near_keyword: Some(r"\b[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b"),
        keywords: &["swift", "bic", "swift code", "bic code"],
        check: Some(check::swift_bic),
        ..BASE
    },
    // Personal.
    Managed {
        id: "EMAIL_ADDRESS",
        severity: Severity::Low,
        pattern: Some(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b"),
        ..BASE
    },
    Managed {
        id: "PHONE_NUMBER",
        severity: Severity::Low,
        pattern: Some(concat!(
            // E.164 and international forms: +44 20 7946 0958, +1 (415) 555-0123, +33 1 23 45 67 89.
            r"\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}\b",
            // US: (415) 555-0123, 415-555-0123, 415.555.0123.
            r"|\(\d{3}\) ?\d{3}[ .-]\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b",
            // UK national forms (020 7946 0958, 0161 496 0000, 07700 900123, 01632 960 001)
            // and German ones (030 1234567).
            r"|\b0\d{2} \d{4} \d{4}\b|\b0\d{3} \d{3} \d{4}\b|\b0\d{4} \d{6}\b|\b0\d{4} \d{3} \d{3}\b|\b0\d{2,4} \d{5,8}\b",
            // French: 01 23 45 67 89.
            r"|\b0[1-9](?:[ .]\d{2}){4}\b"
        )),
        check: Some(check::phone),
        ..BASE
    },
    Managed {
        id: "DATE_OF_BIRTH",
        severity: Severity::Medium,
        near_keyword: Some(concat!(
            r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})\b",
            r"|\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6},? \d{4}\b",
            r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6} \d{1,2},? \d{4}\b"
        )),
        keywords: &[
            "date of birth",
            "birth date",
            "birthdate",
            "birthday",
            "dob",
            "d.o.b",
            "born",
            "geburtsdatum",
            "date de naissance",
            "fecha de nacimiento",
            "data di nascita",
        ],
        max_distance: 40,
        check: Some(check::birth_date),
        ..BASE
    },
    Managed {
        id: "ADDRESS",
        severity: Severity::Medium,
        near_keyword: Some(concat!(
            r"\b\d{1,6},? (?:[A-Z][a-z]{1,20} ){1,4}(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Ln|Lane|Dr|Drive|Way|Ct|Court|Pl|Place|Ter|Terrace|Pkwy|Parkway|Close|Crescent|Gardens|Square)\b",
            // UK postcodes: SW1A 1AA, M1 1AE, EC1A 1BB.
            r"|\b[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2}\b"
        )),
        keywords: &[
            "address",
            "addr",
            "street",
            "residence",
            "ship to",
            "shipping",
            "mailing",
            "postcode",
            "post code",
            "zip code",
        ],
        max_distance: 80,
        ..BASE
    },
    Managed {
        id: "IP_ADDRESS",
        severity: Severity::Low,
        pattern: Some(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
        check: Some(check::ipv4),
        ..BASE
    },
    // National identification numbers.
    Managed {
        id: "USA_SOCIAL_SECURITY_NUMBER",
        category: Category::NationalId,
        pattern: Some(r"\b\d{3}-\d{2}-\d{4}\b"),
        near_keyword: Some(r"\b\d{3} ?\d{2} ?\d{4}\b"),
        keywords: &["ssn", "social security", "ss#", "ss no"],
        check: Some(check::us_ssn),
        ..BASE
    },
    Managed {
        id: "USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        category: Category::NationalId,
        pattern: Some(r"\b9\d{2}-\d{2}-\d{4}\b"),
        near_keyword: Some(r"\b9\d{2} ?\d{2} ?\d{4}\b"),
        keywords: &["itin", "taxpayer identification"],
        check: Some(check::us_itin),
        ..BASE
    },
    Managed {
        id: "UK_NATIONAL_INSURANCE_NUMBER",
        category: Category::NationalId,
        pattern: Some(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        check: Some(check::uk_nino),
        ..BASE
    },
    Managed {
        id: "UK_NHS_NUMBER",
        category: Category::NationalId,
        near_keyword: Some(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"),
        keywords: &["nhs", "nhs number", "nhs no", "health service"],
        check: Some(check::uk_nhs),
        ..BASE
    },
    Managed {
        id: "CANADA_SOCIAL_INSURANCE_NUMBER",
        category: Category::NationalId,
        near_keyword: Some(r"\b\d{3}[ -]?\d{3}[ -]?\d{3}\b"),
        keywords: &["sin", "social insurance", "nas", "assurance sociale"],
        check: Some(check::ca_sin),
        ..BASE
    },
    Managed {
        id: "SPAIN_DNI",
        category: Category::NationalId,
        pattern: Some(r"\b\d{8}-?[A-Z]\b"),
        check: Some(check::es_dni),
        ..BASE
    },
    Managed {
        id: "SPAIN_NIE",
        category: Category::NationalId,
        pattern: Some(r"\b[XYZ]-?\d{7}-?[A-Z]\b"),
        check: Some(check::es_dni),
        ..BASE
    },
    Managed {
        id: "ITALY_FISCAL_CODE",
        category: Category::NationalId,
        pattern: Some(r"\b[A-Z]{6}\d{2}[ABCDEHLMPRST]\d{2}[A-Z]\d{3}[A-Z]\b"),
        check: Some(check::it_codice_fiscale),
        ..BASE
    },
    Managed {
        id: "FRANCE_NATIONAL_IDENTIFICATION_NUMBER",
        category: Category::NationalId,
        pattern: Some(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b"),
        check: Some(check::fr_nir),
        ..BASE
    },
    Managed {
        id: "GERMANY_TAX_IDENTIFICATION_NUMBER",
        category: Category::NationalId,
        near_keyword: Some(r"\b[1-9]\d{10}\b|\b[1-9]\d (?:\d{3} ){2}\d{3}\b"),
        keywords: &["steuer-id", "steuerid", "idnr", "identifikationsnummer", "steueridentifikationsnummer", "tax id"],
        check: Some(check::de_tax_id),
        ..BASE
    },
    Managed {
        id: "NETHERLANDS_BSN",
        category: Category::NationalId,
        near_keyword: Some(r"\b\d{9}\b|\b\d{4}\.\d{2}\.\d{3}\b"),
        keywords: &["bsn", "burgerservicenummer", "sofinummer"],
        check: Some(check::nl_bsn),
        ..BASE
    },
    Managed {
        id: "POLAND_PESEL",
        category: Category::NationalId,
        near_keyword: Some(r"\b\d{11}\b"),
        keywords: &["pesel"],
        check: Some(check::pl_pesel),
        ..BASE
    },
    Managed {
        id: "INDIA_AADHAAR_NUMBER",
        category: Category::NationalId,
        // Twelve digits in groups of four are also parcel and account numbers: near a keyword only.
        near_keyword: Some(r"\b[2-9]\d{3} ?\d{4} ?\d{4}\b"),
        keywords: &["aadhaar", "aadhar", "uidai"],
        check: Some(check::in_aadhaar),
        ..BASE
    },
    Managed {
        id: "AUSTRALIA_TAX_FILE_NUMBER",
        category: Category::NationalId,
        near_keyword: Some(r"\b\d{3} ?\d{3} ?\d{3}\b"),
        keywords: &["tfn", "tax file number"],
        check: Some(check::au_tfn),
        ..BASE
    },
];

/// Every managed identifier, in the order the engine prefers them.
pub fn definitions() -> Vec<Definition> {
    TABLE
        .iter()
        .map(|m| Definition {
            id: m.id.to_owned(),
            category: m.category,
            severity: m.severity,
            pattern: m.pattern.map(str::to_owned),
            near_keyword: m.near_keyword.map(str::to_owned),
            keywords: m.keywords.iter().map(|k| (*k).to_owned()).collect(),
            max_distance: m.max_distance,
            ignore_words: m.ignore_words.iter().map(|w| (*w).to_owned()).collect(),
            check: m.check,
        })
        .collect()
}
