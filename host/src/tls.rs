//! TLS for the HTTP listener (rustls with the ring provider), offering
//! HTTP/2 and HTTP/1.1 by ALPN: browsers speak HTTP/2 only over TLS, and
//! only HTTP/2 lifts their limit of six connections per host, which
//! otherwise stalls a page with more than five live cameras.

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: the certificate chain and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// One made for localhost, 127.0.0.1, ::1 and this machine's name,
    /// once, and kept in the cache folder.
    SelfSigned,
}

/// A listener's TLS: what accepts connections, and what to tell the operator.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// SHA-256 of the (first) certificate, `AB:CD:...`.
    pub fingerprint: String,
    /// The certificate file, for clients that should trust it.
    pub cert_file: PathBuf,
}

impl Tls {
    /// `cache_dir`: where a self-signed certificate is kept.
    pub fn load(source: &TlsSource, cache_dir: Option<&Path>) -> Result<Tls> {
        let (cert_file, key_file) = match source {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::SelfSigned => {
                let dir = crate::config::state_dir(cache_dir)
                    .context("--tls-self-signed needs a cache folder to keep its certificate (--cache-dir)")?
                    .join("tls");
                self_signed(&dir)?
            }
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
            .and_then(|certs| certs.collect())
            .with_context(|| format!("cannot read certificates from {}", cert_file.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert_file.display());
        let key = PrivateKeyDer::from_pem_file(&key_file)
            .with_context(|| format!("cannot read a private key from {}", key_file.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key)
            .with_context(|| format!("{} and {} do not make a usable certificate", cert_file.display(), key_file.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let fingerprint = Sha256::digest(&certs[0]).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), fingerprint, cert_file })
    }
}

/// The self-signed certificate and key in `dir`, made the first time.
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("self-signed.pem"), dir.join("self-signed.key"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(host) = hostname() {
        names.push(host);
    }
    let made = rcgen::generate_simple_self_signed(names).context("cannot make a self-signed certificate")?;
    crate::secret::write_file(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    crate::secret::write_file(&cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok((cert, key))
}

fn hostname() -> Option<String> {
    let name = rustix::system::uname().nodename().to_str().ok()?.trim().to_string();
    (!name.is_empty() && name != "localhost").then_some(name)
}
