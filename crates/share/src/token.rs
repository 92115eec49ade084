//! Tokens and their keyed hashes. A token is 256 bits from the OS random source, URL-safe; the
//! store only ever sees HMAC-SHA256(share key, token), so a copy of the database redeems nothing.
//! Lookups go by that hash through an index, so no comparison runs over secret bytes.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::TryRng;
use rand::rngs::SysRng;
use sha2::Sha256;

const KEY_FILE: &str = "share-key";
const KEY_BYTES: usize = 32;
const TOKEN_BYTES: usize = 32;

/// The secret that keys token hashes. Kept in the data dir (mode 0600), shared by every server
/// that shares the data dir.
#[derive(Clone)]
pub struct ShareKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ShareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareKey(<redacted>)")
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SysRng.try_fill_bytes(&mut bytes).expect("the OS random source is available");
    bytes
}

impl ShareKey {
    /// Reads the key, creating it on first use. Servers starting together on one data dir
    /// agree on one key: the file appears atomically and only the first creation wins.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            let key = random::<KEY_BYTES>();
            if latchkey_storage::create_private_file(&path, &key)? {
                return Ok(Self(key));
            }
        }
        let mut key = [0u8; KEY_BYTES];
        std::fs::File::open(&path)?.read_exact(&mut key)?;
        Ok(Self(key))
    }

    pub fn hash(&self, token: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A fresh token: 256 random bits, base64url without padding (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<TOKEN_BYTES>())
}

/// A share id: public, random, and distinct in form from tokens.
pub fn new_share_id() -> String {
    format!("shr_{}", hex_lower(&random::<12>()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed_with_a_kept_key() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, new_token());
        let dir = tempfile::tempdir().unwrap();
        let key = ShareKey::load_or_create(dir.path()).unwrap();
        let again = ShareKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.hash(&a), again.hash(&a));
        assert_ne!(key.hash(&a), key.hash(&new_token()));
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = ShareKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(key.hash(&a), other.hash(&a));
    }
}
