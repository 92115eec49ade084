//! Compiled wildcard patterns (`*`, `?`) with policy variables, matched in place without allocating.
//!
//! A pattern is a sequence of tokens. Variables are resolved against the request context while
//! matching and their values compared as literals (a `*` inside a user name is not a wildcard).

use crate::context::{RequestContext, fold_key};

/// How a policy string is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (Action, Resource, StringLike, Arn*); otherwise literal.
    pub wildcards: bool,
    /// `${key}` is a policy variable (Version 2012-10-17 only).
    pub variables: bool,
    /// Case-insensitive (actions, StringEqualsIgnoreCase); literals are stored folded.
    pub fold_case: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    /// `*`: any run of characters, including none.
    AnyRun,
    /// `?`: exactly one character.
    AnyOne,
    /// `${key}` or `${key, 'default'}`; `key` is folded for the context lookup.
    Variable {
        key: Box<str>,
        default: Option<Box<str>>,
    },
}

/// A compiled policy string: an Action, a Resource, or one value of a String*/Arn* condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: Box<str>,
    tokens: Box<[Token]>,
    fold_case: bool,
}

impl Pattern {
    /// Compiles `text`; the error names what is wrong with a `${...}` variable.
    pub(crate) fn compile(text: &str, syntax: Syntax) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                let close = rest.find('}').ok_or_else(|| format!("unterminated policy variable in {text:?}"))?;
                let inner = &rest[2..close];
                rest = &rest[close + 1..];
                match inner {
                    // AWS's escapes for characters that would otherwise be special.
                    "*" | "?" | "$" => literal.push_str(inner),
                    _ => {
                        flush(&mut literal, &mut tokens, syntax.fold_case);
                        tokens.push(parse_variable(inner, text)?);
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut literal, &mut tokens, syntax.fold_case);
                    // `**` matches what `*` matches; one token keeps backtracking linear.
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut literal, &mut tokens, syntax.fold_case);
                    tokens.push(Token::AnyOne);
                }
                _ => literal.push(c),
            }
        }
        flush(&mut literal, &mut tokens, syntax.fold_case);
        Ok(Pattern { source: text.into(), tokens: tokens.into(), fold_case: syntax.fold_case })
    }

    /// The policy text this pattern was compiled from.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern matches one fixed string (no wildcard, no variable).
    pub(crate) fn is_fixed(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Whether a variable of the pattern reads a key starting with `prefix` (folded).
    pub(crate) fn reads_key_prefix(&self, prefix: &str) -> bool {
        self.tokens.iter().any(|t| matches!(t, Token::Variable { key, .. } if key.starts_with(prefix)))
    }

    /// True for a lone `*` (matches everything, no context needed).
    pub(crate) fn is_match_all(&self) -> bool {
        matches!(&*self.tokens, [Token::AnyRun])
    }

    /// Matches `input` against the whole pattern. A variable whose key is absent from `ctx`
    /// (or multivalued) and has no default matches nothing, so the whole pattern fails.
    pub(crate) fn matches(&self, input: &str, ctx: &RequestContext) -> bool {
        let tokens = &*self.tokens;
        let (mut ti, mut pos) = (0usize, 0usize);
        // Where to resume after the last `*`: the token after it and the input position it
        // has swallowed up to. Classic glob backtracking: O(len(input) * len(pattern)) worst case.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            if let Some(token) = tokens.get(ti) {
                let advanced = match token {
                    Token::AnyRun if ti + 1 == tokens.len() => return true,
                    Token::AnyRun => {
                        resume = Some((ti + 1, pos));
                        Some(pos)
                    }
                    Token::AnyOne => input[pos..].chars().next().map(|c| pos + c.len_utf8()),
                    Token::Literal(text) => match_literal(input, pos, text, self.fold_case),
                    Token::Variable { key, default } => match resolve(ctx, key, default.as_deref()) {
                        Some(value) => match_literal(input, pos, value, self.fold_case),
                        None => return false,
                    },
                };
                if let Some(next) = advanced {
                    ti += 1;
                    pos = next;
                    continue;
                }
            } else if pos == input.len() {
                return true;
            }
            // Mismatch: let the last `*` swallow one more character and retry after it.
            let Some((after_star, swallowed)) = resume else { return false };
            let Some(c) = input[swallowed..].chars().next() else { return false };
            let swallowed = swallowed + c.len_utf8();
            resume = Some((after_star, swallowed));
            ti = after_star;
            pos = swallowed;
        }
    }

    /// Splits an ARN pattern into its six colon-separated components (the last keeps any further
    /// colons, as resource ids may hold them). `None` when there are fewer than six.
    pub(crate) fn split_arn(&self) -> Option<[Pattern; 6]> {
        let mut parts: Vec<Vec<Token>> = vec![Vec::new()];
        for token in self.tokens.iter() {
            let Token::Literal(text) = token else {
                if let Some(part) = parts.last_mut() {
                    part.push(token.clone());
                }
                continue;
            };
            for (i, piece) in text.split(':').enumerate() {
                if i > 0 && parts.len() < 6 {
                    parts.push(Vec::new());
                } else if i > 0 {
                    push_literal(parts.last_mut(), ":");
                }
                push_literal(parts.last_mut(), piece);
            }
        }
        let parts: [Vec<Token>; 6] = parts.try_into().ok()?;
        Some(parts.map(|tokens| Pattern {
            source: self.source.clone(),
            tokens: tokens.into(),
            fold_case: self.fold_case,
        }))
    }
}

fn push_literal(part: Option<&mut Vec<Token>>, text: &str) {
    let Some(part) = part else { return };
    if text.is_empty() {
        return;
    }
    if let Some(Token::Literal(prev)) = part.last_mut() {
        *prev = format!("{prev}{text}").into();
    } else {
        part.push(Token::Literal(text.into()));
    }
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>, fold_case: bool) {
    if literal.is_empty() {
        return;
    }
    let text = if fold_case { fold_key(literal) } else { std::mem::take(literal) };
    literal.clear();
    tokens.push(Token::Literal(text.into()));
}

/// `key` or `key, 'default'` (AWS: "a comma and a space", the default in single quotes).
fn parse_variable(inner: &str, text: &str) -> Result<Token, String> {
    let (key, default) = match inner.split_once(',') {
        None => (inner.trim(), None),
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default.strip_prefix('\'').and_then(|d| d.strip_suffix('\''));
            let default = quoted.ok_or_else(|| {
                format!("the default of policy variable ${{{inner}}} in {text:?} must be in single quotes")
            })?;
            (key.trim(), Some(default.into()))
        }
    };
    if key.is_empty() {
        return Err(format!("empty policy variable in {text:?}"));
    }
    Ok(Token::Variable { key: fold_key(key).into(), default })
}

/// A variable's value: the key's single value in the request, else its default.
fn resolve<'a>(ctx: &'a RequestContext, key: &str, default: Option<&'a str>) -> Option<&'a str> {
    match ctx.get_folded(key) {
        // AWS: multivalued keys cannot be used as variables.
        Some([value]) => Some(value),
        _ => default,
    }
}

/// Matches `literal` at `input[pos..]`, returning the position after it.
fn match_literal(input: &str, pos: usize, literal: &str, fold_case: bool) -> Option<usize> {
    let rest = &input[pos..];
    if !fold_case {
        return rest.starts_with(literal).then_some(pos + literal.len());
    }
    // Actions are ASCII: compare bytes (the literal is folded already), no char decoding.
    if literal.is_ascii() {
        let head = rest.as_bytes().get(..literal.len())?;
        return (head.eq_ignore_ascii_case(literal.as_bytes()) && rest.is_char_boundary(literal.len()))
            .then_some(pos + literal.len());
    }
    let mut chars = rest.char_indices();
    for want in literal.chars() {
        let (_, got) = chars.next()?;
        if !chars_equal_folded(got, want) {
            return None;
        }
    }
    Some(chars.next().map_or(input.len(), |(i, _)| pos + i))
}

/// Case-insensitive character comparison, ASCII on the fast path.
pub(crate) fn chars_equal_folded(a: char, b: char) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a.to_lowercase().eq(b.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOB: Syntax = Syntax { wildcards: true, variables: true, fold_case: false };

    fn matches(pattern: &str, input: &str, ctx: &RequestContext) -> bool {
        Pattern::compile(pattern, GLOB).map(|p| p.matches(input, ctx)).unwrap_or(false)
    }

    #[test]
    fn wildcards_backtrack() {
        let ctx = RequestContext::new();
        assert!(matches("a*b*c", "aXbYbZc", &ctx));
        assert!(matches("a*b?c", "abbXc", &ctx));
        assert!(!matches("a*b?c", "abc", &ctx));
        assert!(matches("*", "", &ctx));
        assert!(matches("**x", "yyx", &ctx));
        assert!(!matches("x*", "yx", &ctx));
        assert!(matches("h?llo", "héllo", &ctx));
    }

    #[test]
    fn variables_resolve_and_escape() {
        let mut ctx = RequestContext::new();
        ctx.insert("aws:username", "alice");
        assert!(matches("home/${aws:username}/*", "home/alice/x", &ctx));
        assert!(!matches("home/${aws:username}/*", "home/bob/x", &ctx));
        assert!(matches("home/${aws:userid, 'nobody'}/x", "home/nobody/x", &ctx));
        assert!(!matches("home/${aws:userid}/x", "home//x", &ctx));
        assert!(matches("a${*}b", "a*b", &ctx));
        assert!(!matches("a${*}b", "aXb", &ctx));
    }

    #[test]
    fn variable_value_is_literal() {
        let mut ctx = RequestContext::new();
        ctx.insert("aws:username", "*");
        assert!(!matches("home/${aws:username}", "home/alice", &ctx));
        assert!(matches("home/${aws:username}", "home/*", &ctx));
    }

    #[test]
    fn arn_split_keeps_variables_whole() {
        let p = Pattern::compile("arn:aws:iam::1:user/${aws:username}", GLOB).ok();
        let parts = p.as_ref().and_then(Pattern::split_arn);
        let mut ctx = RequestContext::new();
        ctx.insert("aws:username", "a:b");
        assert!(parts.is_some_and(|parts| parts[5].matches("user/a:b", &ctx)));
        let short = Pattern::compile("arn:aws:s3", GLOB).ok();
        assert!(short.as_ref().and_then(Pattern::split_arn).is_none());
    }
}
