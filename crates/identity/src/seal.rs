//! The server master key and the secrets sealed under it (AES-256-GCM, one HKDF-derived key per purpose).
//!
//! Secret access keys, session secrets and MFA seeds are stored sealed, so a copy of the
//! database alone opens nothing. Each sealed value is bound to the row it belongs to (the
//! associated data), so it cannot be moved to another row and still open.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// The file in the data directory that holds the key when the environment does not.
pub const KEY_FILE: &str = "master-key";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const VERSION: u8 = 1;

/// What a sealed value is; each purpose has its own derived key, so a value sealed for one
/// purpose never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    AccessKeySecret,
    SessionSecret,
    MfaSeed,
}

impl Purpose {
    const ALL: [Purpose; 3] = [Purpose::AccessKeySecret, Purpose::SessionSecret, Purpose::MfaSeed];

    /// The HKDF info string; changing one makes every value sealed for that purpose unreadable.
    fn label(self) -> &'static str {
        match self {
            Purpose::AccessKeySecret => "latchkey/seal/v1/access-key-secret",
            Purpose::SessionSecret => "latchkey/seal/v1/session-secret",
            Purpose::MfaSeed => "latchkey/seal/v1/mfa-seed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// LATCHKEY_MASTER_KEY is set but is not a 32-byte key. The value itself is never repeated.
    #[error(
        "LATCHKEY_MASTER_KEY must be 32 bytes written as 64 hex characters or as standard base64 \
         (44 characters); {0}"
    )]
    InvalidEnvKey(String),
    #[error(
        "{path} is accessible by group or others (mode {mode:04o}); the master key must be private: \
         run `chmod 600 {path}`"
    )]
    KeyFileNotPrivate { path: PathBuf, mode: u32 },
    #[error("{path} must hold exactly 32 bytes, it holds {len}; restore the original key file")]
    KeyFileLength { path: PathBuf, len: usize },
    #[error("master key file {path}: {source}")]
    KeyFileIo { path: PathBuf, source: std::io::Error },
    /// Too short to be a sealed value, or sealed by an unknown format version.
    #[error("sealed value is truncated or of an unknown format")]
    Malformed,
    /// The value was sealed under another master key, for another purpose or another row, or
    /// it was altered. Deliberately one error: which of these is not the caller's business.
    #[error("sealed value does not open under this master key, purpose and binding")]
    DoesNotOpen,
}

/// The server master key, held only as the per-purpose ciphers and the fingerprint derived from it.
pub struct MasterKey {
    ciphers: [Aes256Gcm; 3],
    fingerprint: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// `env`: the value of LATCHKEY_MASTER_KEY if set (64 hex chars, or standard base64 of 32
    /// bytes); otherwise `<data_dir>/master-key` (32 raw bytes), created on first start with
    /// mode 0600. An existing file accessible by group or others is refused.
    ///
    /// The file is written privately, fsynced and then hard-linked into place, so servers starting
    /// together on one data dir agree on one key: the first link wins and the others read it.
    pub fn load(data_dir: &Path, env: Option<&str>) -> Result<MasterKey, SealError> {
        if let Some(value) = env {
            return Ok(Self::from_bytes(decode_env_key(value)?));
        }
        let path = data_dir.join(KEY_FILE);
        let io_error = |source| SealError::KeyFileIo { path: path.clone(), source };
        if !path.exists() {
            let key = Zeroizing::new(rand::random::<[u8; KEY_BYTES]>());
            if latchkey_storage::create_private_file(&path, key.as_slice()).map_err(io_error)? {
                return Ok(Self::from_bytes(*key));
            }
        }
        read_key_file(&path)
    }

    pub fn from_bytes(mut bytes: [u8; KEY_BYTES]) -> MasterKey {
        let hkdf = Hkdf::<Sha256>::new(None, &bytes);
        bytes.zeroize();
        let ciphers = Purpose::ALL.map(|purpose| {
            let mut key = Zeroizing::new([0u8; KEY_BYTES]);
            hkdf.expand(purpose.label().as_bytes(), key.as_mut_slice())
                .expect("32 bytes is a valid HKDF-SHA256 length");
            Aes256Gcm::new(&(*key).into())
        });
        let mut id = [0u8; 16];
        hkdf.expand(b"latchkey/master-key-fingerprint/v1", &mut id).expect("16 bytes is a valid HKDF-SHA256 length");
        MasterKey { ciphers, fingerprint: hex::encode(id) }
    }

    /// A non-secret id of this key (16 bytes of HKDF output, hex). The server records it so a
    /// replica started with another key refuses to start instead of failing every login.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Seals `plaintext` for `purpose`, bound to `bound_to` (e.g. the access key id).
    /// Output: version byte 1 || 96-bit random nonce || ciphertext and tag.
    pub fn seal(&self, purpose: Purpose, bound_to: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self.ciphers[purpose.index()]
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: bound_to.as_bytes() })
            .expect("AES-GCM refuses only plaintexts over 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same purpose and binding.
    pub fn open(&self, purpose: Purpose, bound_to: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let Some((&VERSION, rest)) = sealed.split_first() else {
            return Err(SealError::Malformed);
        };
        if rest.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Malformed)?;
        self.ciphers[purpose.index()]
            .decrypt(&nonce, Payload { msg: ciphertext, aad: bound_to.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| SealError::DoesNotOpen)
    }

    /// [`MasterKey::open`] for secrets that are text (secret access keys, session secrets).
    pub fn open_string(&self, purpose: Purpose, bound_to: &str, sealed: &[u8]) -> Result<Zeroizing<String>, SealError> {
        let mut bytes = self.open(purpose, bound_to, sealed)?;
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(not_utf8) => {
                not_utf8.into_bytes().zeroize();
                Err(SealError::Malformed)
            }
        }
    }
}

fn decode_env_key(value: &str) -> Result<[u8; KEY_BYTES], SealError> {
    let value = value.trim();
    // Base64 of 32 bytes ends in '=', so a value of hex digits alone is meant as hex.
    let decoded = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value)
            .map_err(|_| SealError::InvalidEnvKey(format!("it is an odd number ({}) of hex digits", value.len())))?
    } else {
        STANDARD.decode(value).map_err(|_| {
            SealError::InvalidEnvKey(format!("it is neither 64 hex characters nor base64 ({} characters)", value.len()))
        })?
    };
    let decoded = Zeroizing::new(decoded);
    <[u8; KEY_BYTES]>::try_from(decoded.as_slice())
        .map_err(|_| SealError::InvalidEnvKey(format!("it decodes to {} bytes", decoded.len())))
}

fn read_key_file(path: &Path) -> Result<MasterKey, SealError> {
    let io_error = |source| SealError::KeyFileIo { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io_error)?;
    // Checked on the open file, so the mode seen is the mode of the bytes read.
    let mode = file.metadata().map_err(io_error)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SealError::KeyFileNotPrivate { path: path.to_path_buf(), mode });
    }
    let mut contents = Zeroizing::new(Vec::with_capacity(KEY_BYTES + 1));
    file.take(KEY_BYTES as u64 + 1).read_to_end(&mut contents).map_err(io_error)?;
    let key = <[u8; KEY_BYTES]>::try_from(contents.as_slice())
        .map_err(|_| SealError::KeyFileLength { path: path.to_path_buf(), len: contents.len() })?;
    Ok(MasterKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; KEY_BYTES])
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_purpose_and_binding() {
        let master = key(7);
        let sealed = master.seal(Purpose::AccessKeySecret, "AKIAEXAMPLE", b"wJalrXUtnFEMI");
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_BYTES + 13 + TAG_BYTES);
        assert_eq!(master.open(Purpose::AccessKeySecret, "AKIAEXAMPLE", &sealed).unwrap().as_slice(), b"wJalrXUtnFEMI");
        assert_eq!(
            master.open_string(Purpose::AccessKeySecret, "AKIAEXAMPLE", &sealed).unwrap().as_str(),
            "wJalrXUtnFEMI"
        );

        let refused = |result: Result<Zeroizing<Vec<u8>>, SealError>| matches!(result, Err(SealError::DoesNotOpen));
        assert!(refused(master.open(Purpose::SessionSecret, "AKIAEXAMPLE", &sealed)));
        assert!(refused(master.open(Purpose::MfaSeed, "AKIAEXAMPLE", &sealed)));
        assert!(refused(master.open(Purpose::AccessKeySecret, "AKIAOTHER", &sealed)));
        assert!(refused(key(8).open(Purpose::AccessKeySecret, "AKIAEXAMPLE", &sealed)));
        for bit in [8, 8 * 5, 8 * 14, 8 * sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(refused(master.open(Purpose::AccessKeySecret, "AKIAEXAMPLE", &flipped)), "bit {bit}");
        }
    }

    #[test]
    fn truncated_or_unknown_versions_are_malformed() {
        let master = key(7);
        let sealed = master.seal(Purpose::MfaSeed, "arn:aws:iam::000000000000:mfa/alice", &[1u8; 20]);
        for len in [0, 1, 1 + NONCE_BYTES, NONCE_BYTES + TAG_BYTES] {
            assert!(matches!(master.open(Purpose::MfaSeed, "x", &sealed[..len]), Err(SealError::Malformed)), "{len}");
        }
        // Cutting into the ciphertext leaves a well-formed but inauthentic value.
        let cut = &sealed[..sealed.len() - 1];
        assert!(matches!(
            master.open(Purpose::MfaSeed, "arn:aws:iam::000000000000:mfa/alice", cut),
            Err(SealError::DoesNotOpen)
        ));
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert!(matches!(
            master.open(Purpose::MfaSeed, "arn:aws:iam::000000000000:mfa/alice", &other_version),
            Err(SealError::Malformed)
        ));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let master = key(1);
        let a = master.seal(Purpose::SessionSecret, "ASIA1", b"same");
        let b = master.seal(Purpose::SessionSecret, "ASIA1", b"same");
        assert_ne!(a[1..1 + NONCE_BYTES], b[1..1 + NONCE_BYTES]);
        assert_ne!(a, b);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let master = key(3);
        let sealed = master.seal(Purpose::SessionSecret, "", b"");
        assert!(master.open(Purpose::SessionSecret, "", &sealed).unwrap().is_empty());
    }

    #[test]
    fn non_utf8_plaintext_is_not_a_string() {
        let master = key(3);
        let sealed = master.seal(Purpose::SessionSecret, "ASIA1", &[0xff, 0xfe]);
        assert!(matches!(master.open_string(Purpose::SessionSecret, "ASIA1", &sealed), Err(SealError::Malformed)));
    }

    #[test]
    fn fingerprint_is_stable_and_distinguishes_keys() {
        let fingerprint = key(9).fingerprint();
        assert_eq!(fingerprint.len(), 32);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fingerprint, key(9).fingerprint());
        assert_ne!(fingerprint, key(10).fingerprint());
        // Not the key itself, nor any prefix of it.
        assert!(!fingerprint.contains(&hex::encode([9u8; 4])));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let shown = format!("{:?}", key(0xab));
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load(dir.path(), None).unwrap();
        let path = dir.path().join(KEY_FILE);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(metadata.len(), KEY_BYTES as u64);
        // No staging file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let second = MasterKey::load(dir.path(), None).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        let sealed = first.seal(Purpose::AccessKeySecret, "AKIA1", b"secret");
        assert_eq!(second.open(Purpose::AccessKeySecret, "AKIA1", &sealed).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn an_existing_key_file_is_read_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, [5u8; KEY_BYTES]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(MasterKey::load(dir.path(), None).unwrap().fingerprint(), key(5).fingerprint());
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, [5u8; KEY_BYTES]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = MasterKey::load(dir.path(), None).unwrap_err();
        assert!(matches!(error, SealError::KeyFileNotPrivate { mode: 0o644, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("chmod 600") && message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("0644"), "{message}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(MasterKey::load(dir.path(), None), Err(SealError::KeyFileNotPrivate { .. })));
    }

    #[test]
    fn a_key_file_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        for len in [31, 33, 64] {
            std::fs::write(&path, vec![5u8; len]).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let error = MasterKey::load(dir.path(), None).unwrap_err();
            assert!(matches!(error, SealError::KeyFileLength { .. }), "{len}: {error:?}");
        }
    }

    #[test]
    fn env_key_in_hex_or_base64_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let expected = key(0x42).fingerprint();
        let hex_key = hex::encode([0x42u8; KEY_BYTES]);
        assert_eq!(MasterKey::load(dir.path(), Some(&hex_key)).unwrap().fingerprint(), expected);
        assert_eq!(MasterKey::load(dir.path(), Some(&hex_key.to_uppercase())).unwrap().fingerprint(), expected);
        let base64_key = STANDARD.encode([0x42u8; KEY_BYTES]);
        assert_eq!(MasterKey::load(dir.path(), Some(&format!("{base64_key}\n"))).unwrap().fingerprint(), expected);
        // The environment is used instead of the file: none is created.
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn env_key_of_the_wrong_length_is_refused_without_repeating_it() {
        let dir = tempfile::tempdir().unwrap();
        for (value, says) in [
            (hex::encode([0x42u8; 16]), "16 bytes"),
            (hex::encode([0x42u8; 33]), "33 bytes"),
            ("abc".to_string(), "odd number (3)"),
            (STANDARD.encode([0x42u8; 31]), "31 bytes"),
            (STANDARD.encode([0x42u8; 48]), "48 bytes"),
            ("not a key!".to_string(), "neither"),
            (String::new(), "0 bytes"),
        ] {
            let error = MasterKey::load(dir.path(), Some(&value)).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, SealError::InvalidEnvKey(_)), "{message}");
            assert!(message.contains("LATCHKEY_MASTER_KEY") && message.contains(says), "{message}");
            assert!(value.is_empty() || !message.contains(&value), "{message}");
        }
    }
}
