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

/// A running emulator on 127.0.0.1, served by its own thread and runtime so it
/// works beside any caller (blocking tests, C programs, async code). Dropping it
/// stops it.
pub struct Emulator {
    addr: SocketAddr,
    service: Arc<Service>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds and starts serving.
    pub fn start(config: Config) -> std::io::Result<Emulator> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let service = Arc::new(Service::new(config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(service.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("azbatch-emulator")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("azbatch-emulator".into())
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
        Ok(Emulator {
            addr,
            service,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
