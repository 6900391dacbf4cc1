//! `--dry-run`: every request read and checked as the run would, then the
//! plan printed (dependency waves, the batches of each wave with their items'
//! methods and URLs, the throttle scope of each item) and nothing sent, no
//! token asked for. Batches are cut as the engine cuts them (count, bytes,
//! ARM's 20 with bodies); a real run may cut differently when throttling or
//! retries reorder the work.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use azbatch::dialect::{batch_version, throttle_scope};
use azbatch::plan::{self, Limits, Size};
use azbatch::{limits, Options, Request};

/// Prints the plan of `requests`, each in its dependency wave (`waves`, from
/// the request list's graph), to `out`.
pub fn print(
    requests: &[Request],
    waves: &[usize],
    options: &Options,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let deepest = waves.iter().copied().max().map_or(0, |w| w + 1);
    let mut by_wave: Vec<VecDeque<usize>> = vec![VecDeque::new(); deepest];
    for (i, w) in waves.iter().enumerate() {
        by_wave[*w].push_back(i);
    }
    let limits = Limits {
        items: options.batch_size,
        bytes: limits::MAX_BATCH_BYTES,
    };
    let size = |i: usize| Size {
        body: requests[i].body.is_some(),
        bytes: requests[i].wire_size(),
    };
    let mut scopes: BTreeMap<String, usize> = BTreeMap::new();
    let mut text = vec![];
    let mut batches = 0;
    for (w, mut ready) in by_wave.into_iter().enumerate() {
        writeln!(
            text,
            "wave {} ({} requests{})",
            w + 1,
            ready.len(),
            if w == 0 {
                ""
            } else {
                ", each sent once the requests it depends on have succeeded"
            }
        )?;
        while !ready.is_empty() {
            let version = |i: usize| batch_version(options.api, &requests[i].url);
            let batch = plan::next_batch(&mut ready, limits, size, version, |_| true);
            batches += 1;
            let bytes: usize = batch.iter().map(|&i| requests[i].wire_size()).sum();
            writeln!(
                text,
                "  batch {batches}: {} requests, about {bytes} bytes",
                batch.len()
            )?;
            for &i in &batch {
                let r = &requests[i];
                let scope = throttle_scope(options.api, &r.method, &r.url);
                writeln!(
                    text,
                    "    {:<6} {}  [{}] id {}",
                    r.method, r.url, scope, r.id
                )?;
                *scopes.entry(scope).or_default() += 1;
            }
        }
    }
    writeln!(
        out,
        "azbatch dry run: {} requests, {} dependency wave(s), {batches} batch(es) of at most {} to {}; nothing sent, no token asked for",
        requests.len(),
        deepest,
        options.batch_size,
        options.batch_url()
    )?;
    out.write_all(&text)?;
    writeln!(out, "throttle scopes:")?;
    for (scope, n) in scopes {
        writeln!(out, "  {scope}: {n} request(s)")?;
    }
    Ok(())
}
