//! Each managed identifier finds its own kind of value, and leaves alone the look-alikes that
//! fail its check: documentation keys, checksum-failing numbers, hashes, UUIDs, dates.

use latchkey_scan::{Engine, Report, ScanConfig};

fn engine() -> Engine {
    Engine::new(&ScanConfig::default()).expect("the managed identifiers compile")
}

fn found(report: &Report) -> Vec<(&str, u64)> {
    report.findings.iter().map(|f| (f.identifier.as_str(), f.count)).collect()
}

#[test]
fn every_managed_identifier_finds_its_example() {
    let engine = engine();
    let cases: &[(&str, &str)] = &[
        ("AWS_CREDENTIALS", "bob,,AKIA2E3A4F5B2Q4C7D6X,Fk3vH1qU/2mWsZ8rTy7LbN0pQx4eKd5cJa9oRi6G,https://signin\n"),
        ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key = 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\n"),
        (
            "PEM_PRIVATE_KEY",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n",
        ),
        (
            "OPENSSH_PRIVATE_KEY",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
        ),
        (
            "PGP_PRIVATE_KEY",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0QbWcBCADJp3Xr5Yb0SDwlnvwVwYU0sW5XJqHqk2Tn5o1dQpNDQk8n2xLs\n",
        ),
        (
            "PUTTY_PRIVATE_KEY",
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20261205\nPublic-Lines: 2\n",
        ),
        ("GITHUB_TOKEN", "token: ghp_Q7dK2mX9pL4vR8sT1wY6zB3nC5fH0jG2aE7u\n"),
        ("GITLAB_TOKEN", "GITLAB=glpat-x9Yz3Qw7Er1Ty5Ui8OpA\n"),
        ("SLACK_TOKEN", "SLACK_BOT=xoxb-2648271937-5730192847361-Qm3kYp8Zt2Xw\n"),
        ("STRIPE_API_KEY", "stripe: sk_live_51Hq8mK2eZvKYlo2C9xT4pQr7\n"),
        ("GOOGLE_API_KEY", "key=AIzaSyD3kq9XmL2pV7rT1wY6zB3nC5fH0jG2aE7\n"),
        ("GOOGLE_OAUTH_TOKEN", "client_secret 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\n"),
        (
            "JSON_WEB_TOKEN",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n",
        ),
        (
            "AZURE_STORAGE_KEY",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=q3X9kL2mP7vR1tW6yZ4bN8cF5hJ0gA3eD7uS2iO9pK4lM1nB6xC8zV5qT3wY7rE0aG2sH4jD9fL6kP1mQ8nR3t==;\n",
        ),
        ("CONNECTION_STRING_PASSWORD", "DATABASE_URL=postgres://app:Tr0ub4dor-x9@db.internal:5432/app\n"),
        ("PASSWORD_ASSIGNMENT", "db_password = \"hunter2!x\"\n"),
        ("CREDIT_CARD_NUMBER", "card: 4111 1111 1111 1111\n"),
        ("BANK_ACCOUNT_NUMBER_IBAN", "IBAN GB82 WEST 1234 5698 7654 32\n"),
        ("USA_ROUTING_NUMBER", "routing number: 021000021\n"),
        ("SWIFT_CODE", "SWIFT: DEUTDEFF500\n"),
        ("EMAIL_ADDRESS", "contact ada.lovelace@example.org today\n"),
        ("PHONE_NUMBER", "call +44 20 7946 0958\n"),
        ("DATE_OF_BIRTH", "Date of birth: 1985-04-12\n"),
        ("ADDRESS", "Address: 221 Baker Street\n"),
        ("IP_ADDRESS", "from 192.168.10.4 at noon\n"),
        ("USA_SOCIAL_SECURITY_NUMBER", "SSN 536-22-1234\n"),
        ("USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER", "ITIN 912-71-1234\n"),
        ("UK_NATIONAL_INSURANCE_NUMBER", "NI number AB 12 34 56 C\n"),
        ("UK_NHS_NUMBER", "NHS number 943 476 5919\n"),
        ("CANADA_SOCIAL_INSURANCE_NUMBER", "SIN: 130 456 783\n"),
        ("SPAIN_DNI", "DNI 12345678Z\n"),
        ("SPAIN_NIE", "NIE X1234567L\n"),
        ("ITALY_FISCAL_CODE", "CF RSSMRA85T10A562S\n"),
        ("FRANCE_NATIONAL_IDENTIFICATION_NUMBER", "NIR 2 55 08 14 168 025 38\n"),
        ("GERMANY_TAX_IDENTIFICATION_NUMBER", "Steuer-ID 86095742719\n"),
        ("NETHERLANDS_BSN", "BSN 111222333\n"),
        ("POLAND_PESEL", "PESEL 44051401359\n"),
        ("INDIA_AADHAAR_NUMBER", "Aadhaar 2341 2341 2346\n"),
        ("AUSTRALIA_TAX_FILE_NUMBER", "TFN 123 456 782\n"),
    ];
    let ids: Vec<&str> = engine.identifiers().iter().map(|i| i.id.as_str()).collect();
    for id in &ids {
        assert!(cases.iter().any(|(case, _)| case == id), "{id} has no example here");
    }
    for (id, text) in cases {
        let report = engine.scan_bytes(text.as_bytes());
        assert_eq!(found(&report), vec![(*id, 1)], "{text:?}");
    }
}

#[test]
fn look_alikes_are_not_reported() {
    let engine = engine();
    let clean = [
        // AWS's documentation keys.
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        // A SHA-1 and a SHA-256 in hex, a UUID, a base64 blob.
        "commit da39a3ee5e6b4b0d3255bfef95601890afd80709\n",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
        "request 3f2504e0-4f89-11d3-9a0c-0305e82c3301 done\n",
        "blob QmFzZTY0IGJsb2JzIGFyZSBub3Qgc2VjcmV0cyBieSB0aGVtc2VsdmVz\n",
        // Numbers with failing checks.
        "card: 4111 1111 1111 1112\n",
        "order 1234567812345678\n",
        "IBAN GB82 WEST 1234 5698 7654 33\n",
        "SSN 666-22-1234\n",
        "SIN: 130 456 784\n",
        "Aadhaar 2341 2341 2345\n",
        // Shapes without their keyword: nine digits, a date.
        "invoice 021000021 paid on 1985-04-12\n",
        "using 130 456 783 widgets\n",
        // Placeholders.
        "password = \"********\"\npassword: ${DB_PASSWORD}\nDATABASE_URL=postgres://app:${PW}@db/app\n",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n",
        "version 0.0.0.0 and 1.2.3\n",
    ];
    for text in clean {
        let report = engine.scan_bytes(text.as_bytes());
        assert!(report.is_clean(), "{text:?} gave {:?}", found(&report));
    }
}

#[test]
fn a_check_failing_for_one_identifier_lets_another_take_the_match() {
    // 9XX-XX-XXXX is no SSN (area 900-999 is never issued) but is an ITIN.
    let report = engine().scan_bytes(b"tax 912-71-1234 and 536-22-1234\n");
    assert_eq!(
        found(&report),
        vec![("USA_SOCIAL_SECURITY_NUMBER", 1), ("USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER", 1)]
    );
}

#[test]
fn locations_give_line_column_and_a_redacted_sample() {
    let text = "first line\nsecond: 4111-1111-1111-1111 and\nthird 5555555555554444\n";
    let report = engine().scan_bytes(text.as_bytes());
    let cards = &report.findings[0];
    assert_eq!(cards.count, 2);
    let at: Vec<_> = cards.locations.iter().map(|l| (l.offset, l.line, l.column, l.sample.as_str())).collect();
    assert_eq!(at, vec![(19, 2, 9, "41**-****-****-**11"), (49, 3, 7, "55************44")]);
    assert!(!format!("{report:?}").contains("4111-1111-1111-1111"));
}

#[test]
fn keywords_before_a_match_are_noted_and_whole_words_only() {
    let report = engine()
        .scan_bytes(b"visa 4111111111111111\nthe reference of the order that was placed yesterday: 4111111111111111\n");
    let keyword: Vec<bool> = report.findings[0].locations.iter().map(|l| l.keyword).collect();
    assert_eq!(keyword, vec![true, false]);
    // `sin` inside `business` is not the keyword SIN.
    assert!(engine().scan_bytes(b"business 130 456 783\n").is_clean());
}

#[test]
fn finding_types_follow_macie() {
    let engine = engine();
    let credentials = engine.scan_bytes(b"ghp_Q7dK2mX9pL4vR8sT1wY6zB3nC5fH0jG2aE7u");
    assert_eq!(credentials.finding_type().as_deref(), Some("SensitiveData:S3Object/Credentials"));
    let personal = engine.scan_bytes(b"SSN 536-22-1234, mail ada@example.org");
    assert_eq!(personal.finding_type().as_deref(), Some("SensitiveData:S3Object/Personal"));
    let multiple = engine.scan_bytes(b"SSN 536-22-1234, card 4111111111111111");
    assert_eq!(multiple.finding_type().as_deref(), Some("SensitiveData:S3Object/Multiple"));
    assert_eq!(engine.scan_bytes(b"nothing to see").finding_type(), None);
}

#[test]
fn layouts_found_by_review() {
    let engine = engine();
    let body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
    let cases: &[(&str, &str)] = &[
        // What lies between a key id and its secret does not make the pair an example.
        (
            "AWS_CREDENTIALS",
            "AWS_KEY=AKIA2E3A4F5B2Q4C7D6X\nS3_BUCKET=assets.example.com\nAWS_SECRET=Fk3vH1qU/2mWsZ8rTy7LbN0pQx4eKd5cJa9oRi6G\n",
        ),
        // A key inside JSON (a service-account file), in YAML, on one line.
        ("PEM_PRIVATE_KEY", &format!("{{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{body}\\n\"}}")),
        ("PEM_PRIVATE_KEY", &format!("key: |\n  -----BEGIN RSA PRIVATE KEY-----\n  {body}\n")),
        ("PEM_PRIVATE_KEY", &format!("-----BEGIN EC PRIVATE KEY----- {body}{body} -----END EC PRIVATE KEY-----")),
        // An IBAN followed by a short word.
        ("BANK_ACCOUNT_NUMBER_IBAN", "pay to BE68 5390 0754 7034 EUR\n"),
        ("SWIFT_CODE", "SWIFT: DEUTDEFF\n"),
    ];
    for (id, text) in cases {
        let report = engine.scan_bytes(text.as_bytes());
        assert_eq!(found(&report), vec![(*id, 1)], "{text:?}");
    }
    let both = engine.scan_bytes(b"pay to BE68 5390 0754 7034 BIC: GEBABEBB\n");
    assert_eq!(found(&both), vec![("BANK_ACCOUNT_NUMBER_IBAN", 1), ("SWIFT_CODE", 1)]);
    // Documentation keys are still passed over.
    let example = "AWS_KEY=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
    assert!(engine.scan_bytes(example.as_bytes()).is_clean());
}
