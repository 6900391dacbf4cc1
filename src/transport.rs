//! The HTTP client behind the engine and the token sources, behind a trait so
//! both can be tested on a paused clock with a scripted server.

mod roots;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::pki_types::CertificateDer;
use url::Url;

use crate::secret::Secret;
use roots::LazyRoots;

/// An HTTP request the engine wants sent.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, or (an item sent on its own) any of the request methods.
    pub method: &'static str,
    /// Where to: the endpoint (checked by the engine) or an identity endpoint.
    pub url: Url,
    /// Headers besides `Authorization`.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Sent as `Authorization: Bearer ...` when present.
    pub bearer: Option<Secret>,
}

impl HttpRequest {
    /// A request with no headers, body or token.
    pub fn new(method: &'static str, url: Url) -> HttpRequest {
        HttpRequest {
            method,
            url,
            headers: vec![],
            body: None,
            bearer: None,
        }
    }
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Header names and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Why an HTTP exchange failed, split by what it means for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The request never left (connection refused, DNS): safe to send again.
    NotSent(String),
    /// The request may have reached the service (reset, cut-off answer, timeout).
    MaybeSent(String),
    /// TLS failed before anything was sent: the server's certificate was
    /// refused, or the handshake could not be made. Sending again would meet
    /// the same refusal.
    Tls(String),
}

impl TransportError {
    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        match self {
            TransportError::NotSent(m) | TransportError::MaybeSent(m) | TransportError::Tls(m) => m,
        }
    }
}

/// Sends HTTP requests.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request and reads its whole answer.
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>>;
}

/// The real transport: reqwest with rustls, no redirects (a redirect could carry
/// the token elsewhere), a connection pool sized for the run, and the platform's
/// trust roots read only when a first `https` request needs them.
pub struct ReqwestTransport {
    client: reqwest::Client,
    roots: Arc<LazyRoots>,
}

impl ReqwestTransport {
    /// A client for `concurrency` parallel batches. The engine gives each
    /// attempt `attempt_timeout`; the client's own limit, a little longer,
    /// bounds what the engine does not time (token fetches).
    /// Certificates in the PEM file `SSL_CERT_FILE` names are trusted besides
    /// the platform's, on every OS (a TLS-inspecting proxy's authority).
    pub fn new(concurrency: usize, attempt_timeout: Duration) -> Result<ReqwestTransport, String> {
        let extra = match std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            Some(path) => roots::read_pem_file(std::path::Path::new(&path))?,
            None => vec![],
        };
        Self::trusting(concurrency, attempt_timeout, extra)
    }

    /// As [`ReqwestTransport::new`], trusting `extra` roots besides the platform's.
    fn trusting(
        concurrency: usize,
        attempt_timeout: Duration,
        extra: Vec<CertificateDer<'static>>,
    ) -> Result<ReqwestTransport, String> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let roots = Arc::new(LazyRoots::new(provider.clone(), extra));
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(roots.clone())
            .with_no_client_auth();
        // What reqwest offers when it builds the TLS setup itself.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("azbatch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(attempt_timeout + Duration::from_secs(5))
            .pool_max_idle_per_host(concurrency)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ReqwestTransport { client, roots })
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).expect("engine methods are valid");
        if req.url.scheme() == "https" {
            self.roots.warm();
        }
        let mut rb = self.client.request(method, req.url);
        if let Some(token) = &req.bearer {
            rb = rb.bearer_auth(token.expose());
        }
        for (name, value) in req.headers {
            rb = rb.header(name, value);
        }
        if let Some(body) = req.body {
            rb = rb.body(body);
        }
        Box::pin(async move {
            let resp = rb.send().await.map_err(classify)?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = resp
                .bytes()
                .await
                .map_err(|e| TransportError::MaybeSent(describe(&e)))?;
            Ok(HttpResponse {
                status,
                headers,
                body: body.to_vec(),
            })
        })
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    if let Some(tls) = tls_error(&e) {
        TransportError::Tls(format!(
            "TLS with the endpoint failed before anything was sent ({tls}). AzBatch trusts the \
             system's certificate store (on Windows the Windows store, on macOS the keychain); for a \
             private authority or a TLS-inspecting proxy, trust its certificate there, or name a file \
             of trusted certificates in SSL_CERT_FILE"
        ))
    } else if e.is_connect() {
        TransportError::NotSent(describe(&e))
    } else {
        TransportError::MaybeSent(describe(&e))
    }
}

/// The rustls error somewhere in `e`'s causes, if TLS is what failed. An
/// `io::Error` hides the error it wraps from `source()` (and may wrap another
/// `io::Error`), so each one is opened too.
fn tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        let mut inner = Some(c);
        while let Some(i) = inner {
            if let Some(t) = i.downcast_ref::<rustls::Error>() {
                return Some(t.to_string());
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .map(|i| i as &(dyn std::error::Error + 'static));
        }
        cur = c.source();
    }
    None
}

/// The error and its causes on one line. reqwest's text names the URL, never headers.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
