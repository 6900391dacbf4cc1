//! `HTTPS_PROXY` and `NO_PROXY` through a real CONNECT proxy: the emulator
//! behind TLS (a certificate for `localhost` made here, trusted through
//! `SSL_CERT_FILE`), a proxy in this process that tunnels and logs every
//! CONNECT and every byte it carries, and `azbatch run` as the user runs it.
//! The token must reach only the endpoint, inside the tunnel.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use azbatch_emulator::{Config, Emulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "proxy-test-token-7c1e";

/// What the proxy saw: CONNECT targets, and every byte from the client.
#[derive(Default)]
struct Seen {
    connects: Vec<String>,
    bytes: Vec<u8>,
}

/// Terminates TLS for `localhost` and hands the plain bytes to `backend`.
async fn tls_front(
    backend: std::net::SocketAddr,
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
) -> u16 {
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// A CONNECT proxy: answers 200, then pipes bytes both ways, keeping a copy
/// of what the client sent.
async fn connect_proxy(seen: Arc<Mutex<Seen>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = vec![];
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                seen.lock().unwrap().bytes.extend(head.as_bytes());
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|h| h.split(' ').next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                seen.lock().unwrap().connects.push(target.to_string());
                let port = target.rsplit(':').next().unwrap_or("443");
                let Ok(mut upstream) = TcpStream::connect(format!("127.0.0.1:{port}")).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.split();
                let up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        seen.lock().unwrap().bytes.extend(&buf[..n]);
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = tokio::io::copy(&mut ur, &mut cw);
                let _ = tokio::join!(up, down);
            });
        }
    });
    port
}

fn run(endpoint: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azbatch"));
    cmd.args([
        "run",
        "--endpoint",
        endpoint,
        "--token",
        TOKEN,
        "--max-attempts",
        "2",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for v in [
        "AZBATCH_TOKEN",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let input: String = (0..3)
        .map(|i| {
            format!(
                "\"/subscriptions/{}?api-version=2022-12-01\"\n",
                azbatch_emulator::arm::model::subscription_id(i)
            )
        })
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn https_proxy_tunnels_and_no_proxy_bypasses() {
    let emu = Emulator::start(Config {
        token: Some(TOKEN.into()),
        subscriptions: 3,
        ..Config::default()
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("azbatch-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("localhost.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (front, proxy) = rt.block_on(async {
        (
            tls_front(emu.addr(), cert).await,
            connect_proxy(seen.clone()).await,
        )
    });
    let endpoint = format!("https://localhost:{front}");
    let proxy_url = format!("http://127.0.0.1:{proxy}");
    let ca = ca.to_str().unwrap();

    // Through the proxy: a CONNECT to the endpoint, the token only inside TLS.
    let (code, stdout, stderr) = run(
        &endpoint,
        &[("HTTPS_PROXY", &proxy_url), ("SSL_CERT_FILE", ca)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 3);
    let s = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!s.connects.is_empty(), "the run went through the proxy");
    assert!(
        s.connects
            .iter()
            .all(|c| *c == format!("localhost:{front}")),
        "only the endpoint: {:?}",
        s.connects
    );
    assert!(
        !s.bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the proxy never sees the token: it travels inside the tunnel's TLS"
    );
    let batches = emu.batches().len();
    assert!(batches >= 1);

    // The lowercase spelling too.
    let (code, _, stderr) = run(
        &endpoint,
        &[("https_proxy", &proxy_url), ("SSL_CERT_FILE", ca)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !seen.lock().unwrap().connects.is_empty(),
        "https_proxy is honoured"
    );
    seen.lock().unwrap().connects.clear();

    // NO_PROXY names the host: straight to the endpoint, the proxy sees nothing.
    let (code, _, stderr) = run(
        &endpoint,
        &[
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", "localhost"),
            ("SSL_CERT_FILE", ca),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        seen.lock().unwrap().connects.is_empty(),
        "NO_PROXY bypasses the proxy"
    );
    assert!(emu.batches().len() > batches);

    // An untrusted certificate fails the run with the TLS error at once (no
    // resend meets anything but the same refusal), never sends the token in the clear.
    let (code, stdout, _) = run(&endpoint, &[]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("TlsFailed") && stdout.contains("certificate"),
        "{stdout}"
    );
    assert!(stdout.contains("\"attempts\":1"), "sent once: {stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
