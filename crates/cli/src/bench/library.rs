//! The library alone, for the CPU it takes per request: `azbatch bench`
//! runs this in a child process (`azbatch bench-library`, hidden) and reads
//! its CPU from the kernel. Requests are made in memory and results dropped,
//! so no JSON input is read and none is written: what is left is the
//! library's work (planning, the engine, the wire format, HTTP) and the
//! caller's `add` and `next`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use azbatch::auth::Credential;
use azbatch::secret::Secret;
use azbatch::{Api, Error, Job, Next, Options, RequestSpec};

/// What the child runs.
#[derive(clap::Args)]
pub struct Args {
    /// The emulator.
    #[arg(long)]
    endpoint: String,
    /// Its bearer token.
    #[arg(long)]
    token: String,
    /// How many ARM reads.
    #[arg(long)]
    count: usize,
    /// Over how many subscriptions.
    #[arg(long)]
    subscriptions: usize,
}

/// The arguments of a child that reads `count` ARM resource groups over `subscriptions`.
pub fn child_args(endpoint: &str, token: &str, count: usize, subscriptions: usize) -> Vec<String> {
    let mut a = vec!["bench-library".to_string()];
    for (k, v) in [
        ("--endpoint", endpoint.to_string()),
        ("--token", token.to_string()),
        ("--count", count.to_string()),
        ("--subscriptions", subscriptions.to_string()),
    ] {
        a.push(k.into());
        a.push(v);
    }
    a
}

/// Adds the reads as the caller of `batch_add` would, takes every result as
/// `batch_next` would, and prints how many came back.
pub fn run(args: Args) -> Result<()> {
    let mut options = Options::new(Api::Arm);
    options.endpoint = azbatch::endpoint::parse_endpoint(&args.endpoint)?;
    options.credential = Some(Credential::Static(Secret::new(args.token)));
    options.concurrency = super::CONCURRENCY;
    options.batch_size = super::BATCH;
    let job = Arc::new(Job::new(options));
    job.open()?;
    let producer = job.clone();
    let (count, subscriptions) = (args.count, args.subscriptions);
    let feeder = std::thread::spawn(move || -> Result<(), Error> {
        for url in (0..count).map(|i| super::read_url(i, subscriptions)) {
            let spec = RequestSpec::get(url);
            while let Err(e) = producer.add(spec.clone()) {
                match e {
                    Error::Full => std::thread::sleep(Duration::from_millis(2)),
                    e => return Err(e),
                }
            }
        }
        producer.close_input()
    });
    let mut results = 0;
    loop {
        match job.next(Duration::from_secs(60))? {
            Next::Item(_) => results += 1,
            Next::Timeout => {}
            Next::Done => break,
        }
    }
    match feeder.join() {
        Ok(r) => r?,
        Err(_) => bail!("adding the requests failed"),
    }
    println!("{results}");
    Ok(())
}
