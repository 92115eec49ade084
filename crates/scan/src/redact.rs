//! What a finding may keep of the text it matched: a redacted sample that shows its shape and a
//! few characters at each end, never the whole value.

/// Characters stripped from a match's ends before it is shown or compared with the allow-list:
/// the delimiters some patterns take to mark where a token starts or ends.
fn delimiter(b: &u8) -> bool {
    b.is_ascii_whitespace() || b"\"'=:,;()<>[]{}.".contains(b)
}

/// The matched text without the delimiters around it.
pub fn core(matched: &[u8]) -> &[u8] {
    &matched[core_span(matched)]
}

/// Where [`core`] is in `matched`.
pub fn core_span(matched: &[u8]) -> std::ops::Range<usize> {
    let start = matched.iter().position(|b| !delimiter(b)).unwrap_or(matched.len());
    let end = matched.iter().rposition(|b| !delimiter(b)).map_or(start, |i| i + 1);
    start..end
}

/// At most this many masked characters are written, so that a sample does not reveal a long
/// value's length either.
const MASK_MAX: usize = 24;

/// A sample of `matched`: an eighth of its characters (at most four) shown at each end, the rest
/// masked with `*` except spaces and dashes (which show the format); control characters become
/// spaces. Twelve characters or fewer are masked whole, and so is a match that holds a name and
/// a value (`=`, `:`, `@`, quotes: an assignment, a URL with a password, an address), whose
/// ends could be most of a short secret.
pub fn sample(matched: &[u8]) -> String {
    let core = core(matched);
    let named = core.iter().any(|b| b"=:@\"'".contains(b));
    let text = String::from_utf8_lossy(core);
    let chars: Vec<char> = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let shown = if chars.len() > 12 && !named { (chars.len() / 8).min(4) } else { 0 };
    let middle = &chars[shown..chars.len() - shown];
    let mut out: String = chars[..shown].iter().collect();
    out.extend(middle.iter().take(MASK_MAX).map(|&c| if c == ' ' || c == '-' { c } else { '*' }));
    if middle.len() > MASK_MAX {
        out.push('…');
    }
    out.extend(&chars[chars.len() - shown..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_the_shape_and_hide_the_value() {
        assert_eq!(sample(b"4111 1111 1111 1111"), "41** **** **** **11");
        assert_eq!(sample(b"536-22-1234"), "***-**-****");
        assert_eq!(sample(b" wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEK,"), "wJal************************…PLEK");
        assert_eq!(core(b"=\"hunter2!\""), b"hunter2!");
        assert_eq!(sample(b"my_service_api_password = \"Zq9!xK\""), "*********************** …");
        assert_eq!(sample(b"postgres://app:Tr0ub4dor-x9@db"), "************************…");
    }

    #[test]
    fn a_sample_never_holds_more_than_a_quarter_of_the_value() {
        for len in 1..200 {
            let value: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let shown = sample(value.as_bytes()).chars().filter(|c| c.is_ascii_lowercase()).count();
            assert!(shown * 4 <= len, "{len}: {shown} shown");
        }
    }
}
