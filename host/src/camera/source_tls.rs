//! TLS for `https://` camera sources. IP cameras and framewire boxes on a
//! LAN mostly have self-signed certificates, which no CA vouches for, so a
//! source can pin its certificate's SHA-256 (`tls-fingerprint=AB:CD:…`,
//! what framewire prints for its own at start) instead. Without a pin the
//! system's CA certificates decide; `tls-insecure` accepts any certificate
//! (the link is still encrypted, but not authenticated). Handshake
//! signatures are checked in every case.

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How a source's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's CA certificates.
    System,
    /// Exactly this certificate (SHA-256 of its DER).
    Pinned([u8; 32]),
    /// Any certificate.
    Insecure,
}

impl Trust {
    /// Parse a fingerprint as `AB:CD:…` (or without colons), 32 bytes.
    pub fn pinned(s: &str) -> Result<Trust> {
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() == 32)
            .with_context(|| format!("tls-fingerprint {s:?}: expected the SHA-256 of a certificate, 32 hex bytes"))?;
        Ok(Trust::Pinned(bytes.try_into().expect("32 bytes")))
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A client config for `trust`, HTTP/1.1 only.
pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::System => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                bail!("no CA certificates found on this system; pin the source's certificate with tls-fingerprint=");
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pinned(want) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { want: Some(*want), provider }))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { want: None, provider }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts the pinned certificate (or, with no pin, any), and checks the
/// handshake's signatures with it as usual.
#[derive(Debug)]
struct Verifier {
    want: Option<[u8; 32]>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        match self.want {
            Some(want) if want != got => Err(rustls::Error::General(format!(
                "certificate fingerprint {} is not the pinned {}",
                fingerprint(&got),
                fingerprint(&want)
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(Trust::pinned(&hex).unwrap(), Trust::Pinned([0xAB; 32]));
        assert_eq!(Trust::pinned(&colons).unwrap(), Trust::Pinned([0xAB; 32]));
        assert!(Trust::pinned("AB:CD").is_err());
        assert!(Trust::pinned(&"ZZ".repeat(32)).is_err());
    }
}
