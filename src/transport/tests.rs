//! The real transport against local servers: plain HTTP, and TLS with an
//! authority of the test's own making.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::LazyConfigAcceptor;

use super::{HttpRequest, ReqwestTransport, Transport, TransportError};

/// Reads one HTTP/1.1 request head and answers `200 ok`.
async fn answer_ok<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await;
    let _ = s.shutdown().await;
}

fn transport(extra: Vec<CertificateDer<'static>>) -> ReqwestTransport {
    ReqwestTransport::trusting(2, Duration::from_secs(5), extra).unwrap()
}

fn get(url: &str) -> HttpRequest {
    HttpRequest::new("GET", url.parse().unwrap())
}

#[tokio::test]
async fn plain_http_never_reads_the_trust_roots() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        answer_ok(s).await;
    });
    let t = transport(vec![]);
    let r = t.send(get(&url)).await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));
    // Reading them takes milliseconds, on a thread of its own: give it time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !t.roots.is_loaded(),
        "an http:// exchange read the trust roots"
    );
}

/// An authority and a certificate it signed for 127.0.0.1.
fn authority() -> (
    CertificateDer<'static>,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_der = ca.der().clone();
    let chain = vec![leaf.der().clone(), ca_der.clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_der, chain, key)
}

/// A TLS server for `connections` connections; each gives back the ALPN
/// protocols its client offered.
async fn tls_server(
    connections: usize,
) -> (
    String,
    CertificateDer<'static>,
    tokio::sync::mpsc::Receiver<Vec<Vec<u8>>>,
) {
    let (ca, chain, key) = authority();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(connections);
    tokio::spawn(async move {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = rustls::server::Acceptor::default();
            let Ok(start) = LazyConfigAcceptor::new(acceptor, tcp).await else {
                continue;
            };
            let offered = start
                .client_hello()
                .alpn()
                .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
                .unwrap_or_default();
            tx.send(offered).await.unwrap();
            if let Ok(stream) = start.into_stream(config.clone()).await {
                tokio::spawn(answer_ok(stream));
            }
        }
    });
    (url, ca, rx)
}

#[tokio::test]
async fn https_trusts_what_the_roots_trust_and_nothing_else() {
    let (url, ca, mut offers) = tls_server(2).await;

    let stranger = transport(vec![]);
    let refused = stranger.send(get(&url)).await.unwrap_err();
    assert!(
        matches!(refused, TransportError::Tls(_)),
        "a refused certificate is a TLS failure, not a connection to retry: {refused:?}"
    );
    assert!(
        refused.message().contains("certificate") && refused.message().contains("SSL_CERT_FILE"),
        "a certificate no root vouches for was not refused as such: {}",
        refused.message()
    );
    assert!(stranger.roots.is_loaded());

    let trusting = transport(vec![ca]);
    let r = trusting.send(get(&url)).await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));

    for _ in 0..2 {
        let offered = offers.recv().await.unwrap();
        assert_eq!(offered, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}

#[test]
fn ssl_cert_file_is_read_as_pem_certificates_or_refused_saying_why() {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("azbatch-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, ..) = authority();
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca.as_ref());
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    let good = dir.join("ca.pem");
    std::fs::write(&good, format!("a comment\n{pem}{pem}")).unwrap();
    let certs = super::roots::read_pem_file(&good).unwrap();
    assert_eq!(certs, vec![ca.clone(), ca]);

    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let e = super::roots::read_pem_file(&empty).unwrap_err();
    assert!(
        e.contains("SSL_CERT_FILE") && e.contains("holds no certificate"),
        "{e}"
    );
    let e = super::roots::read_pem_file(&dir.join("missing.pem")).unwrap_err();
    assert!(
        e.contains("missing.pem") && e.contains("cannot be read"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
