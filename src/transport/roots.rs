//! The platform's trust roots, read when a TLS handshake first needs them.
//!
//! Reading them (every file under `/etc/ssl/certs`, and the bundle beside it)
//! takes 5 to 10 ms, which reqwest's own setup spends before the first request
//! is built. A run against `http://` (the emulator on loopback) never needs
//! them, and a run against Azure reads them on a thread of their own while its
//! first connection opens. Verification is the platform verifier's, as in
//! reqwest's default: nothing is trusted that it would not trust.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

type Loaded = Result<Verifier, rustls::Error>;

/// The certificates of a PEM file (`SSL_CERT_FILE`), or why there are none.
pub(super) fn read_pem_file(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let text = std::fs::read(path)
        .map_err(|e| format!("SSL_CERT_FILE names {shown}, which cannot be read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("SSL_CERT_FILE names {shown}, which is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "SSL_CERT_FILE names {shown}, which holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A certificate verifier whose root store is read on first use.
#[derive(Debug)]
pub(super) struct LazyRoots {
    provider: Arc<CryptoProvider>,
    /// Roots trusted besides the platform's (tests' own authority).
    extra: Vec<CertificateDer<'static>>,
    loaded: Arc<OnceLock<Loaded>>,
}

impl LazyRoots {
    pub(super) fn new(provider: Arc<CryptoProvider>, extra: Vec<CertificateDer<'static>>) -> Self {
        LazyRoots {
            provider,
            extra,
            loaded: Arc::new(OnceLock::new()),
        }
    }

    /// Starts reading the roots on a thread of their own, once; a handshake
    /// that needs them before they are read waits for that read.
    pub(super) fn warm(self: &Arc<Self>) {
        if self.loaded.get().is_some() {
            return;
        }
        let me = self.clone();
        // A failed spawn only means the first handshake reads them itself.
        let _ = std::thread::Builder::new()
            .name("azbatch-roots".into())
            .spawn(move || {
                me.verifier().ok();
            });
    }

    /// Whether the roots have been read.
    #[cfg(test)]
    pub(super) fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    fn verifier(&self) -> Result<&Verifier, rustls::Error> {
        self.loaded
            .get_or_init(|| {
                Verifier::new_with_extra_roots(self.extra.iter().cloned(), self.provider.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // The signature checks need no roots: the provider's algorithms, as the
    // platform verifier itself uses.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
