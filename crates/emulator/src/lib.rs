//! A local emulator of Azure's batch endpoints, for AzBatch's tests, demo and
//! benchmarks. ARM: `POST /batch` over an in-memory tenant with ARM's
//! throttling and asynchronous batches. Graph: `POST /{v1.0|beta}/$batch` over
//! an in-memory directory with Graph's batch rules and resource-unit
//! throttling. Both with seeded fault injection.

pub mod answer;
pub mod arm;
pub mod cli;
pub mod config;
pub mod faults;
pub mod graph;
pub mod identity;
pub mod plain;
pub mod reply;
pub mod server;
pub mod service;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{Config, Faults, GraphThrottle, Latency, Throttle};
pub use plain::{Calls, PlainRule, PlainServer};
pub use service::{BatchRecord, Op, Service};

/// A router served on 127.0.0.1 by its own thread and runtime, so it works
/// beside any caller (blocking tests, C programs, async code); dropping it
/// stops the server. The emulator's and the plain server's.
pub(crate) struct Serving {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Serving {
    /// Binds `port` (0: any) and serves `app` on a thread named `name`.
    pub(crate) fn start(port: u16, app: axum::Router, name: &str) -> std::io::Result<Serving> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
                runtime.shutdown_background();
            })?;
        Ok(Serving {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running emulator on 127.0.0.1 ([`Serving`]). Dropping it stops it.
pub struct Emulator {
    service: Arc<Service>,
    serving: Serving,
}

impl Emulator {
    /// Binds and starts serving.
    pub fn start(config: Config) -> std::io::Result<Emulator> {
        let port = config.port;
        let service = Arc::new(Service::new(config));
        let serving = Serving::start(port, server::router(service.clone()), "azbatch-emulator")?;
        Ok(Emulator { service, serving })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.serving.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Every inner operation executed so far.
    pub fn ops(&self) -> Vec<Op> {
        self.service.ops()
    }

    /// Reads the Graph directory.
    pub fn graph<T>(&self, f: impl FnOnce(&graph::model::GraphModel) -> T) -> T {
        self.service.graph(f)
    }

    /// How many tokens the identity endpoints issued.
    pub fn tokens_issued(&self) -> u64 {
        self.service.issuer.count()
    }

    /// Every batch request received so far.
    pub fn batches(&self) -> Vec<BatchRecord> {
        self.service.batches.lock().unwrap().clone()
    }

    /// Faults injected so far, by kind.
    pub fn faults_injected(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.service.faults_injected()
    }
}
