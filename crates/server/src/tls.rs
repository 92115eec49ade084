//! TLS on the listener (rustls): the certificate chain and private key from PEM files, HTTP/2
//! and HTTP/1.1 offered by ALPN. `reload` (on SIGHUP) reads the files again: each new handshake
//! takes the configuration current at its start, so connections open at the swap go on with the
//! one they began with and nothing is dropped; a reload that fails keeps the old one.
//!
//! A connection whose first byte does not start a TLS handshake is plain HTTP: served only from
//! loopback when `plain_http_from_loopback` is set (local tools on `http://127.0.0.1`), and
//! otherwise answered with a plain `400` that says to use HTTPS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The PEM files a TLS listener reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Tls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Reads the certificate and key; the error says which file is wrong and how.
    pub fn load(files: TlsFiles) -> anyhow::Result<Tls> {
        let acceptor = acceptor(&files)?;
        Ok(Tls { files, current: RwLock::new(acceptor) })
    }

    /// Reads the files again; on success new handshakes use them.
    pub fn reload(&self) -> anyhow::Result<()> {
        let acceptor = acceptor(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    /// The acceptor for a handshake starting now.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a connection's handshake settled, as S3's server access logs name it: `TLSv1.3`, and
/// the suite's IANA name (`TLS_AES_128_GCM_SHA256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSession {
    pub version: &'static str,
    pub cipher_suite: &'static str,
}

impl TlsSession {
    pub fn of(session: &rustls::ServerConnection) -> TlsSession {
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "-",
        };
        let suite = session.negotiated_cipher_suite().and_then(|suite| suite.suite().as_str());
        // rustls names TLS 1.3 suites `TLS13_...`; their IANA names are `TLS_...`.
        let cipher_suite = match suite {
            Some(name) => name
                .strip_prefix("TLS13_")
                .map_or(name, |rest| IANA_TLS13.iter().find(|n| n[4..] == *rest).copied().unwrap_or(name)),
            None => "-",
        };
        TlsSession { version, cipher_suite }
    }
}

/// The TLS 1.3 suites rustls offers, by their IANA names.
const IANA_TLS13: [&str; 3] = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// Whether a connection that begins with `first` is starting a TLS handshake.
pub fn starts_handshake(first: u8) -> bool {
    first == HANDSHAKE_RECORD
}

fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem_problem).with_context(|| {
        format!("cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from {}", files.key.display())
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no safe protocol version")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the private key in {} does not fit the certificate in {} (or is of a kind TLS cannot use)",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What is wrong with a PEM file, without its content: the parser's own messages quote the
/// offending line, which in a key file flattened onto one line is the whole key.
fn pem_problem(error: pem::Error) -> anyhow::Error {
    match error {
        pem::Error::Io(e) => anyhow::Error::new(e),
        pem::Error::NoItemsFound => anyhow::anyhow!("no PEM block of the expected kind"),
        pem::Error::SectionTooLarge => anyhow::anyhow!("a PEM section is too large"),
        _ => anyhow::anyhow!("not well-formed PEM (each BEGIN and END line on a line of its own)"),
    }
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let unreadable = || format!("cannot read certificates (PEM) from {}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_problem)
        .with_context(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_problem)
        .with_context(unreadable)?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)", path.display());
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    #[test]
    fn bad_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tls::load(files(dir.path(), "", "")).err().unwrap().to_string();
        assert!(err.contains("cert.pem holds no certificate"), "{err}");
        let missing = TlsFiles { cert: dir.path().join("nope.pem"), key: dir.path().join("key.pem") };
        let err = format!("{:#}", Tls::load(missing).err().unwrap());
        assert!(err.contains("cannot read certificates (PEM) from") && err.contains("nope.pem"), "{err}");
    }

    fn self_signed(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    /// The certificate a client is shown in a handshake with `tls` (over an in-memory pipe).
    async fn served_certificate(tls: &Tls, trusted: &str, name: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(trusted.as_bytes()).unwrap()).unwrap();
        let client =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tls.acceptor();
        let server = tokio::spawn(async move { acceptor.accept(server_io).await.map(drop) });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let stream = connector.connect(name, client_io).await.unwrap();
        server.await.unwrap().unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(session.alpn_protocol(), None, "this client offered no ALPN");
        session.peer_certificates().unwrap()[0].to_vec()
    }

    #[tokio::test]
    async fn a_reload_swaps_the_certificate_for_new_handshakes_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (first_cert, first_key) = self_signed("first.test");
        let files = files(dir.path(), &first_cert, &first_key);
        let tls = Tls::load(files.clone()).unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec();
        assert_eq!(served_certificate(&tls, &first_cert, "first.test").await, der(&first_cert));

        let (second_cert, second_key) = self_signed("second.test");
        std::fs::write(&files.cert, &second_cert).unwrap();
        std::fs::write(&files.key, &second_key).unwrap();
        tls.reload().unwrap();
        assert_eq!(served_certificate(&tls, &second_cert, "second.test").await, der(&second_cert));

        // A key that does not fit the certificate: refused, and the second pair stays.
        std::fs::write(&files.key, &first_key).unwrap();
        let err = format!("{:#}", tls.reload().unwrap_err());
        assert!(err.contains("does not fit the certificate"), "{err}");
        assert_eq!(served_certificate(&tls, &second_cert, "second.test").await, der(&second_cert));
    }

    #[test]
    fn a_malformed_key_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("flat.test");
        let flattened = key.replace('\n', " ");
        let err = format!("{:#}", Tls::load(files(dir.path(), &cert, &flattened)).err().unwrap());
        assert!(err.contains("not well-formed PEM"), "{err}");
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!err.contains(&body[..16]), "the key appears in the error: {err}");
    }

    #[test]
    fn a_handshake_is_told_from_plain_http() {
        assert!(starts_handshake(0x16));
        assert!(!starts_handshake(b'G') && !starts_handshake(b'P'));
    }
}
