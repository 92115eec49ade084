//! The check digits and number rules that tell a real identifier from a number of the same
//! shape: Luhn, ISO 7064 (mod 97, mod 11,10), Verhoeff, weighted sums, and the ranges the
//! issuing authorities never hand out. Each takes the matched text as bytes, separators included.

/// The ASCII digits of `text`, separators dropped.
fn digits(text: &[u8]) -> Vec<u8> {
    text.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0').collect()
}

/// The ASCII letters and digits of `text`, upper-cased, separators dropped.
fn alphanumerics(text: &[u8]) -> Vec<u8> {
    text.iter().filter(|b| b.is_ascii_alphanumeric()).map(u8::to_ascii_uppercase).collect()
}

/// Whether every digit is the same one (`0000 0000 0000 0000` passes Luhn but is no card).
fn all_same(digits: &[u8]) -> bool {
    digits.windows(2).all(|pair| pair[0] == pair[1])
}

/// The number the digits spell, if it fits.
fn number(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, d| n * 10 + u64::from(*d))
}

/// Luhn (ISO/IEC 7812-1) over all the digits, the last being the check digit.
pub fn luhn_digits(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 { if d > 4 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card number: 13 to 19 digits of a major brand's ranges and lengths, Luhn-valid,
/// not all one digit (where separators may stand is the pattern's business).
pub fn payment_card(text: &[u8]) -> bool {
    let d = digits(text);
    if !luhn_digits(&d) || all_same(&d) {
        return false;
    }
    let prefix = |n: usize| number(&d[..n.min(d.len())]);
    let len = d.len();
    let visa = d[0] == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = len == 16 && ((51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)));
    let amex = len == 15 && matches!(prefix(2), 34 | 37);
    let discover =
        (16..=19).contains(&len) && (prefix(4) == 6011 || (644..=649).contains(&prefix(3)) || prefix(2) == 65);
    let jcb = (16..=19).contains(&len) && (3528..=3589).contains(&prefix(4));
    let diners = (14..=19).contains(&len) && ((300..=305).contains(&prefix(3)) || matches!(prefix(2), 36 | 38 | 39));
    let unionpay = (16..=19).contains(&len) && prefix(2) == 62;
    visa || mastercard || amex || discover || jcb || diners || unionpay
}

/// IBAN lengths by country (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// An IBAN: the country's length and ISO 7064 mod 97-10 (the rearranged number mod 97 is 1).
pub fn iban(text: &[u8]) -> bool {
    let s = alphanumerics(text);
    let Some((_, len)) = IBAN_LENGTHS.iter().find(|(country, _)| s.len() >= 2 && s[..2] == country[..]) else {
        return false;
    };
    if s.len() != *len || !s[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let remainder = s[4..].iter().chain(&s[..4]).fold(0u32, |r, &c| {
        if c.is_ascii_digit() { (r * 10 + u32::from(c - b'0')) % 97 } else { (r * 100 + u32::from(c - b'A' + 10)) % 97 }
    });
    remainder == 1
}

/// A US ABA routing transit number: a Federal Reserve prefix and the 3-7-1 weighted check.
pub fn aba_routing(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 9 || all_same(&d) {
        return false;
    }
    let prefix = number(&d[..2]);
    let assigned = prefix <= 12 || (21..=32).contains(&prefix) || (61..=72).contains(&prefix) || prefix == 80;
    let weights = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    assigned && d.iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum::<u32>().is_multiple_of(10)
}

/// A US Social Security number: never area 000, 666 or 900-999, group 00 or serial 0000, and
/// not one of the numbers printed in advertising and examples (078-05-1120, 219-09-9999,
/// 123-45-6789).
pub fn us_ssn(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 9 {
        return false;
    }
    let (area, group, serial) = (number(&d[..3]), number(&d[3..5]), number(&d[5..]));
    let advertised = matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !advertised
}

/// A US Individual Taxpayer Identification Number: 9XX, then a group the IRS assigns.
pub fn us_itin(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 9 || d[0] != 9 {
        return false;
    }
    let group = number(&d[3..5]);
    matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// A UK National Insurance number: the prefixes HMRC never issues are refused.
pub fn uk_nino(text: &[u8]) -> bool {
    let s = alphanumerics(text);
    if s.len() != 9 {
        return false;
    }
    let (first, second) = (s[0], s[1]);
    let prefix = [first, second];
    !b"DFIQUV".contains(&first)
        && !b"DFIOQUV".contains(&second)
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&prefix)
        && s[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&s[8])
}

/// A UK NHS number: ten digits, mod 11 with weights 10 to 2 (a check of 10 is never issued).
pub fn uk_nhs(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 10 || all_same(&d) {
        return false;
    }
    let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(d, w)| u32::from(*d) * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    u32::from(d[9]) == check
}

/// A Canadian Social Insurance Number: nine digits, Luhn, never starting with 0 or 8.
pub fn ca_sin(text: &[u8]) -> bool {
    let d = digits(text);
    d.len() == 9 && d[0] != 0 && d[0] != 8 && !all_same(&d) && luhn_digits(&d)
}

/// A Spanish DNI (eight digits and a letter) or NIE (X, Y or Z, seven digits and a letter): the
/// letter is the number mod 23.
pub fn es_dni(text: &[u8]) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s = alphanumerics(text);
    if s.len() != 9 {
        return false;
    }
    let lead = match s[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        d if d.is_ascii_digit() => u64::from(d - b'0'),
        _ => return false,
    };
    if !s[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = s[1..8].iter().fold(lead, |n, d| n * 10 + u64::from(d - b'0'));
    LETTERS[(n % 23) as usize] == s[8]
}

/// An Italian codice fiscale: sixteen characters, the last a check letter over the first
/// fifteen (odd and even positions weighted by the Ministry's tables).
pub fn it_codice_fiscale(text: &[u8]) -> bool {
    const ODD: [u32; 26] =
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    let s = alphanumerics(text);
    if s.len() != 16 {
        return false;
    }
    let value = |c: u8| if c.is_ascii_digit() { usize::from(c - b'0') } else { usize::from(c - b'A') };
    let sum: u32 = s[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| if i.is_multiple_of(2) { ODD[value(c)] } else { value(c) as u32 })
        .sum();
    s[15] == b'A' + (sum % 26) as u8
}

/// A French NIR (numéro de sécurité sociale): thirteen characters and a key of 97 minus the
/// number mod 97 (Corsica's 2A and 2B count as 19 and 18).
pub fn fr_nir(text: &[u8]) -> bool {
    let s = alphanumerics(text);
    if s.len() != 15 || !matches!(s[0], b'1' | b'2') {
        return false;
    }
    let mut body = s[..13].to_vec();
    let corsica = match &body[5..7] {
        b"2A" => Some(b"19"),
        b"2B" => Some(b"18"),
        _ => None,
    };
    if let Some(code) = corsica {
        body[5..7].copy_from_slice(code);
    }
    if !body.iter().chain(&s[13..]).all(u8::is_ascii_digit) {
        return false;
    }
    let n = number(&body.iter().map(|c| c - b'0').collect::<Vec<_>>());
    let key = number(&[s[13] - b'0', s[14] - b'0']);
    let month = number(&[body[3] - b'0', body[4] - b'0']);
    let month_ok = (1..=12).contains(&month) || (20..=42).contains(&month) || (50..=99).contains(&month);
    month_ok && 97 - n % 97 == key
}

/// A German tax identification number (Steuer-IdNr): eleven digits, no leading zero, one digit
/// repeated two or three times in the first ten, and an ISO 7064 mod 11,10 check digit.
pub fn de_tax_id(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &digit in &d[..10] {
        counts[usize::from(digit)] += 1;
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if !matches!(repeated.as_slice(), [2] | [3]) {
        return false;
    }
    let mut product = 10u32;
    for &digit in &d[..10] {
        let mut sum = (u32::from(digit) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (2 * sum) % 11;
    }
    let check = match 11 - product {
        10 => 0,
        c => c,
    };
    u32::from(d[10]) == check
}

/// A Dutch BSN: nine digits passing the 11-test (weights 9 to 2, and -1 for the last).
pub fn nl_bsn(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 9 || all_same(&d) {
        return false;
    }
    let sum: i32 = d[..8].iter().zip((2..=9).rev()).map(|(d, w)| i32::from(*d) * w).sum::<i32>() - i32::from(d[8]);
    sum.rem_euclid(11) == 0
}

/// A Polish PESEL: eleven digits, a real date of birth (the century in the month) and the
/// 1-3-7-9 weighted check digit.
pub fn pl_pesel(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 11 || all_same(&d) {
        return false;
    }
    let month = number(&d[2..4]) % 20;
    let day = number(&d[4..6]);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let weights = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum();
    (10 - sum % 10) % 10 == u32::from(d[10])
}

/// An Indian Aadhaar number: twelve digits, not starting with 0 or 1, Verhoeff-valid.
pub fn in_aadhaar(text: &[u8]) -> bool {
    let d = digits(text);
    d.len() == 12 && d[0] > 1 && !all_same(&d) && verhoeff(&d)
}

/// The Verhoeff check (dihedral group D5), the last digit being the check digit.
fn verhoeff(digits: &[u8]) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let c = digits
        .iter()
        .rev()
        .enumerate()
        .fold(0u8, |c, (i, &d)| D[usize::from(c)][usize::from(P[i % 8][usize::from(d)])]);
    c == 0
}

/// An Australian tax file number: nine digits whose weighted sum (1, 4, 3, 7, 5, 8, 6, 9, 10)
/// is a multiple of 11.
pub fn au_tfn(text: &[u8]) -> bool {
    let d = digits(text);
    if d.len() != 9 || all_same(&d) {
        return false;
    }
    let weights = [1, 4, 3, 7, 5, 8, 6, 9, 10];
    d.iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum::<u32>().is_multiple_of(11)
}

/// A SWIFT/BIC code: four letters of bank, two of country, a location and an optional branch
/// (searched only after a SWIFT or BIC keyword, so that words of eight capitals are not).
pub fn swift_bic(text: &[u8]) -> bool {
    let s = alphanumerics(text);
    matches!(s.len(), 8 | 11) && s[..6].iter().all(u8::is_ascii_uppercase)
}

/// A 40-character AWS secret access key: base64 alphabet with upper, lower case and digits
/// mixed (a hex digest or a word never is).
pub fn aws_secret(text: &[u8]) -> bool {
    let in_alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'/' || *b == b'+';
    let end = text.iter().rposition(in_alphabet).map_or(0, |i| i + 1);
    let tail = text[..end].rsplit(|b| !in_alphabet(b)).next().unwrap_or_default();
    tail.len() == 40 && mixed_alphabet(tail)
}

/// An AWS access key pair: the secret as [`aws_secret`] has it, and neither the key id (the
/// first 20 bytes) nor the secret is one of AWS's documentation examples (`...EXAMPLE`).
pub fn aws_key_pair(text: &[u8]) -> bool {
    let example = |part: &[u8]| memchr::memmem::find(part, b"EXAMPLE").is_some();
    let end = text.iter().rposition(|b| b.is_ascii_alphanumeric() || *b == b'/' || *b == b'+').map_or(0, |i| i + 1);
    aws_secret(text) && !example(&text[..20.min(text.len())]) && !example(&text[end.saturating_sub(40)..end])
}

/// Whether `token` mixes upper case, lower case and digits, as generated secrets do.
pub fn mixed_alphabet(token: &[u8]) -> bool {
    token.iter().any(u8::is_ascii_uppercase)
        && token.iter().any(u8::is_ascii_lowercase)
        && token.iter().any(u8::is_ascii_digit)
}

/// A JSON Web Token: the first segment decodes (base64url) to a JSON header naming `alg`.
pub fn jwt(text: &[u8]) -> bool {
    use base64::Engine as _;
    let start = text.iter().position(|b| b.is_ascii_alphanumeric()).unwrap_or(text.len());
    let header = text[start..].split(|b| *b == b'.').next().unwrap_or_default();
    let Ok(decoded) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else { return false };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&decoded).is_ok_and(|h| h.contains_key("alg"))
}

/// A password in a connection string or an assignment: the value after the last `:` or `=`
/// (before an `@` in a URL) is not empty, a placeholder or a template variable.
pub fn real_password(text: &[u8]) -> bool {
    let value = match memchr::memrchr(b'@', text) {
        Some(at) => {
            let userinfo = &text[..at];
            &userinfo[memchr::memrchr(b':', userinfo).map_or(0, |i| i + 1)..]
        }
        None => {
            let after = memchr::memchr2(b'=', b':', text).map_or(0, |i| i + 1);
            text[after..].trim_ascii_start()
        }
    };
    let quote = |b: &u8| *b == b'"' || *b == b'\'';
    let value = value.trim_ascii();
    let value = value.strip_prefix(b"\"").or_else(|| value.strip_prefix(b"'")).unwrap_or(value);
    let end = value.iter().rposition(|b| !quote(b)).map_or(0, |i| i + 1);
    let value = &value[..end];
    let lower = value.to_ascii_lowercase();
    let placeholder = value.iter().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.' | b'<' | b'>'))
        || value.starts_with(b"${")
        || value.starts_with(b"{{")
        || value.starts_with(b"%(")
        || value.starts_with(b"<")
        || value.starts_with(b"$")
        || [&b"password"[..], b"passwd", b"changeme", b"secret", b"example", b"none", b"null", b"redacted"]
            .iter()
            .any(|word| lower == *word);
    let has_digit_or_symbol = value.iter().any(|b| !b.is_ascii_alphabetic());
    value.len() >= 6 && has_digit_or_symbol && !placeholder
}

/// A date of birth: a calendar date between 1900 and 2029 in one of the usual orders.
pub fn birth_date(text: &[u8]) -> bool {
    let fields: Vec<u64> =
        text.split(|b| !b.is_ascii_digit()).filter(|f| !f.is_empty()).map(|f| number(&digits(f))).collect();
    let plausible = |month: u64, day: u64| (1..=12).contains(&month) && (1..=31).contains(&day);
    match fields[..] {
        // `12 April 1985`, `April 12, 1985`: the month is a name.
        [day, year] => (1..=31).contains(&day) && (1900..=2029).contains(&year),
        [a, b, c] => {
            let (year, rest) = if a >= 1000 { (a, [b, c]) } else { (c, [a, b]) };
            (1900..=2029).contains(&year) && (plausible(rest[0], rest[1]) || plausible(rest[1], rest[0]))
        }
        _ => false,
    }
}

/// An IPv4 address that names a host: four fields of at most 255, not in 0.0.0.0/8 and not the
/// broadcast address.
pub fn ipv4(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else { return false };
    let Ok(addr) = text.parse::<std::net::Ipv4Addr>() else { return false };
    !addr.is_unspecified() && !addr.is_broadcast() && addr.octets()[0] != 0
}

/// A phone number: 8 to 15 digits (E.164's bound), or 10 to 11 in a national form with a
/// leading 0 (UK, Germany, France); not all one digit.
pub fn phone(text: &[u8]) -> bool {
    let d = digits(text);
    let lengths = if text.first() == Some(&b'0') { 10..=11 } else { 8..=15 };
    lengths.contains(&d.len()) && !all_same(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_cards_of_each_brand_pass_and_near_misses_fail() {
        for card in [
            "4111 1111 1111 1111",
            "4012888888881881",
            "5555-5555-5555-4444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "36227206271667",
            "6200000000000005",
        ] {
            assert!(payment_card(card.as_bytes()), "{card}");
        }
        for not_card in ["4111 1111 1111 1112", "1234567812345670", "0000000000000000", "9111111111111111"] {
            assert!(!payment_card(not_card.as_bytes()), "{not_card}");
        }
    }

    #[test]
    fn ibans_check_length_and_mod_97() {
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"FR1420041010050500013M02606"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654 33"));
        assert!(!iban(b"DE8937040044053201300"));
        assert!(!iban(b"QQ89370400440532013000"));
    }

    #[test]
    fn routing_numbers_take_the_weighted_check() {
        assert!(aba_routing(b"021000021"));
        assert!(aba_routing(b"011401533"));
        assert!(!aba_routing(b"021000022"));
        assert!(!aba_routing(b"991000021"));
    }

    #[test]
    fn ssns_outside_the_issued_ranges_fail() {
        assert!(us_ssn(b"536-22-1234"));
        for bad in ["000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000", "078-05-1120"] {
            assert!(!us_ssn(bad.as_bytes()), "{bad}");
        }
        assert!(us_itin(b"912-71-1234"));
        assert!(!us_itin(b"912-69-1234"));
    }

    #[test]
    fn uk_numbers() {
        assert!(uk_nino(b"AB 12 34 56 C"));
        assert!(!uk_nino(b"GB 12 34 56 C"));
        assert!(!uk_nino(b"DA 12 34 56 C"));
        assert!(uk_nhs(b"943 476 5919"));
        assert!(!uk_nhs(b"943 476 5918"));
    }

    #[test]
    fn national_ids_with_check_digits() {
        assert!(ca_sin(b"130 456 783"));
        assert!(!ca_sin(b"130 456 784"));
        assert!(es_dni(b"12345678Z"));
        assert!(es_dni(b"X1234567L"));
        assert!(!es_dni(b"12345678A"));
        assert!(it_codice_fiscale(b"RSSMRA85T10A562S"));
        assert!(!it_codice_fiscale(b"RSSMRA85T10A562T"));
        assert!(fr_nir(b"2 55 08 14 168 025 38"));
        assert!(!fr_nir(b"2 55 08 14 168 025 39"));
        assert!(de_tax_id(b"86095742719"));
        assert!(!de_tax_id(b"86095742718"));
        assert!(!de_tax_id(b"12345678903"));
        assert!(nl_bsn(b"111222333"));
        assert!(!nl_bsn(b"111222334"));
        assert!(pl_pesel(b"44051401359"));
        assert!(!pl_pesel(b"44051401358"));
        assert!(in_aadhaar(b"2341 2341 2346"));
        assert!(!in_aadhaar(b"2341 2341 2345"));
        assert!(au_tfn(b"123 456 782"));
        assert!(!au_tfn(b"123 456 789"));
    }

    #[test]
    fn secrets_and_passwords() {
        assert!(aws_secret(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY"));
        assert!(!aws_secret(b"da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(jwt(b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"));
        assert!(!jwt(b"eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"));
        assert!(real_password(b"postgres://app:S3cr3t-pw@db.internal:5432/app"));
        assert!(!real_password(b"postgres://app:${DB_PASSWORD}@db/app"));
        assert!(real_password(b"password = \"hunter2!x\""));
        assert!(!real_password(b"password = \"********\""));
        assert!(!real_password(b"password: changeme"));
    }

    #[test]
    fn dates_addresses_and_phones() {
        assert!(birth_date(b"1985-04-12"));
        assert!(birth_date(b"12/04/1985"));
        assert!(!birth_date(b"1985-13-40"));
        assert!(!birth_date(b"12/04/1785"));
        assert!(birth_date(b"12 April 1985"));
        assert!(birth_date(b"April 12, 1985"));
        assert!(ipv4(b"192.168.10.4"));
        assert!(!ipv4(b"0.0.0.0"));
        assert!(!ipv4(b"300.1.1.1"));
        assert!(phone(b"+44 20 7946 0958"));
        assert!(!phone(b"+1 111 111 1111"));
        assert!(phone(b"020 7946 0958"));
        assert!(!phone(b"046 454 286"));
        assert!(swift_bic(b"DEUTDEFF500"));
        assert!(swift_bic(b"NWBKGB2L"));
        assert!(swift_bic(b"DEUTDEFF"));
        assert!(!swift_bic(b"DEUT1EFF"));
    }
}
