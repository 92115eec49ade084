//! A request's query parameters read as s3s reads them (`application/x-www-form-urlencoded`:
//! names and values percent-decoded, `+` a space), so that what the gates judge is what the
//! operation will use, and a name sent percent-encoded (`X-Amz-%53ignature`) is still that
//! name. Values are decoded only when asked for: the presigned parameters every request carries
//! (a credential, a signature) are long, and most readers want one or two of them.

use std::borrow::Cow;

/// The parameters of `query`, in order, each name decoded.
pub fn params(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Value<'_>)> {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(name), Value(value))
    })
}

/// A query's parameters read once, names decoded, for a reader that looks up several: each
/// lookup then compares names only, where [`has`] and [`get`] read the whole query again.
pub struct Params<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Params<'a> {
    pub fn parse(query: &'a str) -> Self {
        // A presigned URL carries about eight parameters: room for them up front.
        let mut params = Vec::with_capacity(12);
        params.extend(self::params(query));
        Self(params)
    }

    /// Whether there is a parameter named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The first value of the parameter named `name`, decoded.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.0.iter().find_map(|(n, value)| (n == name).then(|| value.decode()))
    }
}

/// Whether `query` has a parameter named `name`.
pub fn has(query: &str, name: &str) -> bool {
    params(query).any(|(n, _)| n == name)
}

/// Whether `text` has anything to decode.
fn encoded(text: &str) -> bool {
    text.bytes().any(|b| b == b'%' || b == b'+')
}

/// The first value of the parameter named `name`, decoded.
pub fn get<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    params(query).find_map(|(n, value)| (n == name).then(|| value.decode()))
}

/// A parameter's value as sent.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a>(&'a str);

impl<'a> Value<'a> {
    pub fn decode(self) -> Cow<'a, str> {
        decode(self.0)
    }
}

fn decode(text: &str) -> Cow<'_, str> {
    if !encoded(text) {
        return Cow::Borrowed(text);
    }
    // A credential's `%2F`s are the common case: no `+`, no copy before decoding.
    let spaced = if text.contains('+') { Cow::Owned(text.replace('+', " ")) } else { Cow::Borrowed(text) };
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_form_urlencoded_does() {
        let query = "X-Amz-%53ignature=ab%2Bc&&q=a+b%20c&flag&Prefix=home%2Fbob%2F&prefix=x&bad=%FF";
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            assert_eq!(get(query, &name).as_deref(), Some(value.as_ref()), "{name}");
        }
        assert!(has(query, "X-Amz-Signature") && has(query, "flag") && !has(query, "x-amz-signature"));
        assert_eq!(get(query, "prefix").as_deref(), Some("x"), "names are exact");
        assert_eq!(params(query).count(), form_urlencoded::parse(query.as_bytes()).count());
        assert!(matches!(get(query, "Prefix"), Some(Cow::Owned(_))));
        assert!(matches!(get(query, "prefix"), Some(Cow::Borrowed(_))), "nothing to decode: borrowed");
        let parsed = Params::parse(query);
        for name in ["X-Amz-Signature", "q", "flag", "Prefix", "prefix", "bad", "x-amz-signature", "missing", ""] {
            assert_eq!(parsed.get(name), get(query, name), "{name}");
            assert_eq!(parsed.has(name), has(query, name), "{name}");
        }
    }
}
