//! The root access key: from `LATCHKEY_ROOT_ACCESS_KEY` / `LATCHKEY_ROOT_SECRET_KEY`, or generated
//! on first start and kept in `<data dir>/root-credentials` (mode 0600, AWS credentials-file
//! format, so `AWS_SHARED_CREDENTIALS_FILE` can point at it).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use latchkey_identity::RootCredentials;
use rand::RngExt;
use rand::distr::{Alphanumeric, SampleString};
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;

pub const ACCESS_KEY_ENV: &str = "LATCHKEY_ROOT_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "LATCHKEY_ROOT_SECRET_KEY";
const FILE_NAME: &str = "root-credentials";
const PROFILE: &str = "latchkey";

/// Where the root key came from, so the caller can tell the operator once.
pub enum RootSource {
    Environment,
    Stored(PathBuf),
    Generated(PathBuf),
}

pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(RootCredentials, RootSource)> {
    let from_env = (std::env::var(ACCESS_KEY_ENV).ok(), std::env::var(SECRET_KEY_ENV).ok());
    match from_env {
        (Some(access_key_id), Some(secret_key)) => {
            if access_key_id.len() < 3 || secret_key.len() < 8 {
                bail!("{ACCESS_KEY_ENV} needs at least 3 characters and {SECRET_KEY_ENV} at least 8");
            }
            return Ok((RootCredentials { access_key_id, secret_key }, RootSource::Environment));
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("set both {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or neither to use the stored root key")
        }
        (None, None) => {}
    }
    let path = data_dir.join(FILE_NAME);
    if !path.exists() {
        let creds = generate();
        let created = latchkey_storage::create_private_file(&path, render(&creds).as_bytes())
            .with_context(|| format!("cannot create {}", path.display()))?;
        if created {
            return Ok((creds, RootSource::Generated(path)));
        }
        // Another server sharing this data dir created it first; use theirs.
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let creds = parse(&text).with_context(|| format!("{} is malformed", path.display()))?;
    Ok((creds, RootSource::Stored(path)))
}

/// An AWS-style key pair: a 20-character upper-case id and a 40-character secret, from the OS
/// random source.
fn generate() -> RootCredentials {
    let mut rng = UnwrapErr(SysRng);
    let id_tail: String = (0..18)
        .map(|_| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            char::from(alphabet[rng.random_range(0..alphabet.len())])
        })
        .collect();
    RootCredentials { access_key_id: format!("LK{id_tail}"), secret_key: Alphanumeric.sample_string(&mut rng, 40) }
}

fn render(creds: &RootCredentials) -> String {
    format!("[{PROFILE}]\naws_access_key_id = {}\naws_secret_access_key = {}\n", creds.access_key_id, creds.secret_key)
}

fn parse(text: &str) -> anyhow::Result<RootCredentials> {
    let value = |name: &str| {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
            .with_context(|| format!("missing {name}"))
    };
    Ok(RootCredentials { access_key_id: value("aws_access_key_id")?, secret_key: value("aws_secret_access_key")? })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_once_then_reused_with_private_permissions() {
        // The environment must not supply a key for this test to mean anything.
        if std::env::var_os(ACCESS_KEY_ENV).is_some() || std::env::var_os(SECRET_KEY_ENV).is_some() {
            panic!("unset {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} to run this test");
        }
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = load_or_create(dir.path()).unwrap();
        assert!(matches!(source, RootSource::Generated(_)));
        assert_eq!(first.access_key_id.len(), 20);
        assert_eq!(first.secret_key.len(), 40);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = load_or_create(dir.path()).unwrap();
        assert!(matches!(source, RootSource::Stored(_)));
        assert_eq!(again.secret_key, first.secret_key);
        assert_ne!(generate().secret_key, first.secret_key);
    }
}
