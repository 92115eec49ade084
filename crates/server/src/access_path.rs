//! What of a request path the access log may show. Share tokens travel in paths, and clients
//! and proxies spell one path many ways (`//-/s/T`, `/-/./s/T`, `/%2D/s/T`), so the path is
//! first read as a router could read it (percent-decoded, empty and dot segments resolved); a
//! path that reads as one of Latchkey's own routes is logged as that route's pattern, a path
//! into an S3 bucket as it came but with any token-shaped segment masked, and anything else
//! only as a placeholder.

use std::borrow::Cow;

use s3s::validation::{AwsNameValidation, NameValidation};

/// Longer paths are cut here: a log line must not be a place to store data.
const MAX_LOGGED_BYTES: usize = 256;

/// The path as the access log may show it.
pub fn loggable(raw: &str) -> Cow<'_, str> {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let segments = resolve(&decoded);
    if segments.first() == Some(&"-") {
        return Cow::Borrowed(own_route(&segments[1..]));
    }
    let first = raw.trim_start_matches('/').split('/').next().unwrap_or_default();
    if raw == "/" || (raw.starts_with('/') && AwsNameValidation::new().validate_bucket_name(first)) {
        return cap_owned(mask_token_shapes(raw));
    }
    Cow::Borrowed("/<redacted>")
}

/// An object key as the access log may show it: token-shaped segments masked, length capped.
pub fn loggable_key(key: &str) -> Cow<'_, str> {
    cap_owned(mask_token_shapes(key))
}

/// The length of a share token: 256 bits in unpadded base64url.
const TOKEN_CHARS: usize = 43;

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The spans of `text` that could be share tokens: runs of exactly [`TOKEN_CHARS`] token
/// characters (a longer run, such as a SHA-256 in hex, is not one).
fn token_runs(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 0..=bytes.len() {
        if i < bytes.len() && is_token_char(bytes[i]) {
            continue;
        }
        if i - start == TOKEN_CHARS {
            runs.push(start..i);
        }
        start = i + 1;
    }
    runs
}

/// `raw` with every token-shaped run replaced by `<token>`, judged on its decoded form (a token
/// can hide behind `%2F` or `%3F`); `raw` itself when there is none. Decoding only shortens, so
/// a path shorter than a token is passed as it is (this runs on every request).
fn mask_token_shapes(raw: &str) -> Cow<'_, str> {
    if raw.len() < TOKEN_CHARS {
        return Cow::Borrowed(raw);
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let runs = token_runs(&decoded);
    if runs.is_empty() {
        return Cow::Borrowed(raw);
    }
    let mut masked = String::with_capacity(decoded.len());
    let mut at = 0;
    for run in runs {
        masked.push_str(&decoded[at..run.start]);
        masked.push_str("<token>");
        at = run.end;
    }
    masked.push_str(&decoded[at..]);
    Cow::Owned(masked)
}

fn cap_owned(path: Cow<'_, str>) -> Cow<'_, str> {
    match path {
        Cow::Borrowed(path) => cap(path),
        Cow::Owned(path) => Cow::Owned(cap(&path).into_owned()),
    }
}

/// The segments of `path` after removing empty and `.` segments and applying `..`.
fn resolve(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for segment in path.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A `/-/...` path as its route's pattern: share ids and fixed names are kept, tokens and
/// anything unknown are not.
fn own_route(rest: &[&str]) -> &'static str {
    match rest {
        ["health"] => "/-/health",
        ["ready"] => "/-/ready",
        ["metrics"] => "/-/metrics",
        ["access-object"] => "/-/access-object",
        ["shares"] => "/-/shares",
        ["shares", _] => "/-/shares/<id>",
        ["s", ..] => "/-/s/<token>",
        _ => "/-/<redacted>",
    }
}

fn cap(path: &str) -> Cow<'_, str> {
    if path.len() <= MAX_LOGGED_BYTES {
        return Cow::Borrowed(path);
    }
    let mut end = MAX_LOGGED_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &path[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Qm9ndXNUb2tlbkZvclRlc3RpbmdPbmx5XzAxMjM0NTY";

    #[test]
    fn every_spelling_of_a_token_path_is_masked() {
        let spellings = [
            "/-/s/T",
            "//-/s/T",
            "/-//s/T",
            "/-/./s/T",
            "/-/%73/T",
            "/%2D/s/T",
            "/%2d/%73/T",
            "/x/../-/s/T",
            "/-/s/./T",
            "/-/s/T/extra",
            "/%2F-%2Fs%2FT",
            "/-/%2573/T",
            "/-/unknown/T",
            "/T",
            "//T",
            "/-\\s\\T",
        ];
        for spelling in spellings {
            let path = spelling.replace('T', TOKEN);
            let logged = loggable(&path);
            assert!(!logged.contains(TOKEN), "{path} logged as {logged}");
        }
        assert_eq!(loggable(&format!("//-/s/{TOKEN}")), "/-/s/<token>");
        assert_eq!(loggable(&format!("/-/%73/{TOKEN}")), "/-/s/<token>");
        assert_eq!(loggable(&format!("/-/%2573/{TOKEN}")), "/-/<redacted>");
        // Pasted into an S3-shaped path, a token-shaped segment is masked too.
        assert_eq!(loggable(&format!("/reports/{TOKEN}")), "/reports/<token>");
        assert_eq!(loggable(&format!("/reports/-/s/{}", TOKEN.replace('Q', "%51"))), "/reports/-/s/<token>");
        // Behind an encoded separator, or with a character glued on (review finding).
        assert_eq!(loggable(&format!("/reports/s%2F{TOKEN}")), "/reports/s/<token>");
        assert_eq!(loggable(&format!("/reports/{TOKEN}%3F")), "/reports/<token>?");
        assert_eq!(loggable_key(&format!("a/{TOKEN}.pdf")), "a/<token>.pdf");
        let sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(loggable(&format!("/blobs/{sha256}")), format!("/blobs/{sha256}"), "a longer run is no token");
    }

    #[test]
    fn s3_paths_and_known_routes_stay_readable() {
        assert_eq!(loggable("/"), "/");
        assert_eq!(loggable("/reports/q3%20final.pdf"), "/reports/q3%20final.pdf");
        assert_eq!(loggable("/reports//a/./b"), "/reports//a/./b");
        assert_eq!(loggable("/-/health"), "/-/health");
        assert_eq!(loggable("/-/ready"), "/-/ready");
        assert_eq!(loggable("/-/access-object"), "/-/access-object");
        assert_eq!(loggable("/-/shares/shr_abc"), "/-/shares/<id>");
        assert_eq!(loggable("/-/shares"), "/-/shares");
    }

    #[test]
    fn long_paths_are_cut() {
        let long = format!("/bucket/{}", "é".repeat(400));
        let logged = loggable(&long);
        assert!(logged.len() <= MAX_LOGGED_BYTES + 3 && logged.ends_with("..."), "{}", logged.len());
    }
}
