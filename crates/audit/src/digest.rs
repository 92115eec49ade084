//! What a digest signs: a few lines of text that anyone can rebuild from the digest's row and
//! check with the public key (`openssl pkeyutl -verify -rawin`).

use latchkey_meta::AuditDigest;
use time::OffsetDateTime;

use crate::SigningKey;

/// The signed text of a digest: `latchkey-audit-digest-v1`, then one field per line: the time
/// (Unix milliseconds), the first and last positions, the last hash (hex) and the previous
/// digest's signature (hex, `-` for the first digest).
pub fn digest_message(digest: &AuditDigest) -> Vec<u8> {
    let prev = digest.prev_signature.as_deref().map_or_else(|| "-".to_owned(), hex::encode);
    format!(
        "latchkey-audit-digest-v1\n{}\n{}\n{}\n{}\n{prev}\n",
        digest.at.unix_timestamp_nanos() / 1_000_000,
        digest.first_pos,
        digest.last_pos,
        hex::encode(&digest.last_hash),
    )
    .into_bytes()
}

/// A signed digest of the chain from `first_pos` to the head `(last_pos, last_hash)`, after the
/// digest `prev` (if any).
pub fn sign_digest(
    key: &SigningKey,
    at: OffsetDateTime,
    (last_pos, last_hash): (i64, Vec<u8>),
    prev: Option<&AuditDigest>,
) -> AuditDigest {
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
    let mut digest = AuditDigest {
        at,
        first_pos: prev.map_or(1, |p| p.last_pos + 1),
        last_pos,
        last_hash,
        prev_signature: prev.map(|p| p.signature.clone()),
        signature: Vec::new(),
    };
    digest.signature = key.sign(&digest_message(&digest));
    digest
}
