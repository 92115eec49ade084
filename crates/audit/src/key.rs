//! The Ed25519 key that signs audit digests: created on first start as `audit-signing-key`
//! (PKCS#8, mode 0600) in the data dir, so that replicas sharing the data dir sign alike. The
//! public half is published as PEM (SubjectPublicKeyInfo), which OpenSSL and every crypto
//! library read.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const KEY_FILE: &str = "audit-signing-key";
/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32 key bytes (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// The data dir's key, created if there is none (a key that no longer reads is an error:
    /// replacing it would orphan every digest signed so far).
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<SigningKey> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| std::io::Error::other("cannot generate an Ed25519 key"))?;
            latchkey_storage::create_private_file(&path, pkcs8.as_ref())?;
        }
        SigningKey::load(data_dir)
    }

    /// The data dir's key.
    pub fn load(data_dir: &Path) -> std::io::Result<SigningKey> {
        let path = data_dir.join(KEY_FILE);
        let pkcs8 = std::fs::read(&path)?;
        Ed25519KeyPair::from_pkcs8(&pkcs8).map(SigningKey).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not an Ed25519 key: {e}", path.display()),
            )
        })
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key().as_ref().try_into().expect("an Ed25519 public key is 32 bytes"))
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn to_pem(&self) -> String {
        let der = [SPKI_PREFIX.as_slice(), &self.0].concat();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    /// Reads a PEM `PUBLIC KEY` holding an Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        let der = STANDARD.decode(body).map_err(|_| "the public key is not PEM".to_owned())?;
        der.strip_prefix(SPKI_PREFIX.as_slice())
            .and_then(|key| key.try_into().ok())
            .map(PublicKey)
            .ok_or_else(|| "the public key is not an Ed25519 key".to_owned())
    }

    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0).verify(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_its_public_half_round_trips_as_pem() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let again = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let pem = key.public_key().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"), "{pem}");
        let public = PublicKey::from_pem(&pem).unwrap();
        let signature = key.sign(b"digest");
        assert!(public.verifies(b"digest", &signature));
        assert!(!public.verifies(b"digest!", &signature));
        assert!(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
        std::fs::write(dir.path().join(KEY_FILE), b"damaged").unwrap();
        assert!(SigningKey::load_or_create(dir.path()).is_err(), "never replaced silently");
    }
}
