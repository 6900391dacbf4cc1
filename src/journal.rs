//! The crash-safe journal: what a run handed to the network and how each
//! request ended, so that the same command run again after a crash or a
//! `kill -9` sends only what has no final result, replays the rest, and never
//! sends twice a write that may have run.
//!
//! The format is an append-only file of JSON lines, one record per line:
//!
//! ```text
//! {"azbatchJournal":1}
//! {"sent":[4,5,6],"digests":["9f..","03..","c1.."]}
//! {"done":5,"digest":"03..","result":{"id":"5","status":200,...}}
//! ```
//!
//! Why not SQLite: a run has one writer that only ever appends, and reads the
//! file once, at its start. An append-only file gives the same guarantees for
//! that use with nothing to bundle into the library (a C library in every
//! build of the `cdylib`, for Windows PowerShell too) and nothing to migrate:
//! - a `sent` record is on disk (`fdatasync`) before its batch leaves, so a
//!   request the journal does not name as sent was never sent;
//! - each record is one `write` of one whole line, so a killed process leaves
//!   whole lines (the kernel keeps what was written); a power cut can leave a
//!   torn last line, which is dropped (and cut off) when the journal is read,
//!   while a broken line before the last one is refused as damage;
//! - `done` records reach the disk with the next `sent` record's sync and at
//!   the run's end; one lost to a power cut only makes its request count as
//!   sent-without-answer (a read is sent again, a write ends `OutcomeUnknown`).
//!
//! Each request is identified by its position in the input and a digest of
//! what it is (method, URL, headers, body, id, dependencies): a journal whose
//! records do not match the input is refused, naming the first request that
//! differs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::request::Request;
use crate::result::{ErrorInfo, ItemResult, Throttle};

/// What a request is, in 32 hex digits.
pub type Digest = String;

/// What an earlier run of the same input did with one request, as its
/// [journal](crate::journal) says.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Past {
    /// The run keeps no journal.
    #[default]
    Unjournaled,
    /// Never sent: send it (the digest goes with its records).
    New(Digest),
    /// Sent, no final result recorded: it may have run.
    Sent(Digest),
    /// Its final result, to hand out again instead of sending it.
    Done(Box<ItemResult>),
}

/// The first line of every journal.
const HEADER: &str = r#"{"azbatchJournal":1}"#;

/// What the file said about one request.
#[derive(Debug)]
struct Record {
    digest: Digest,
    result: Option<Box<ItemResult>>,
}

/// An open journal: what an earlier run recorded, and the file to append to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    earlier: HashMap<usize, Record>,
    file: Mutex<File>,
}

impl Journal {
    /// Opens the journal at `path`, creating it if it does not exist, and
    /// reads what an earlier run recorded in it.
    pub fn open(path: &Path) -> Result<Journal, Error> {
        let fail = |what: &str, e: std::io::Error| {
            Error::InvalidOptions(format!("journal {}: {what}: {e}", path.display()))
        };
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        // It holds answers (bodies included): readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).map_err(|e| fail("cannot open it", e))?;
        let mut text = vec![];
        file.read_to_end(&mut text)
            .map_err(|e| fail("cannot read it", e))?;
        let (earlier, good) = read(&text)
            .map_err(|why| Error::InvalidOptions(format!("journal {}: {why}", path.display())))?;
        if good < text.len() {
            // A torn last line: cut it off, so what follows starts on a line of its own.
            file.set_len(good as u64)
                .map_err(|e| fail("cannot cut off its torn last line", e))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| fail("cannot append to it", e))?;
        if good == 0 {
            file.write_all(format!("{HEADER}\n").as_bytes())
                .map_err(|e| fail("cannot write it", e))?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            earlier,
            file: Mutex::new(file),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many requests an earlier run recorded.
    pub fn recorded(&self) -> usize {
        self.earlier.len()
    }

    /// What the earlier run did with request number `index`, which is
    /// `request`; an error when it recorded another request there.
    pub fn past(&self, index: usize, request: &Request) -> Result<Past, Error> {
        let digest = digest(request);
        let Some(record) = self.earlier.get(&index) else {
            return Ok(Past::New(digest));
        };
        if record.digest != digest {
            return Err(Error::InvalidRequest(format!(
                "request[{index}] (id \"{}\"): the journal {} recorded another request at this place: it belongs to different input (run the same input with it, or give a new journal path)",
                request.id,
                self.path.display()
            )));
        }
        Ok(match &record.result {
            Some(r) => Past::Done(r.clone()),
            None => Past::Sent(digest),
        })
    }

    /// Records that these requests are about to be sent, on disk before it
    /// returns (with every record written before them).
    pub fn sent(&self, requests: &[(usize, &str)]) -> std::io::Result<()> {
        let (indexes, digests): (Vec<usize>, Vec<&str>) = requests.iter().copied().unzip();
        let line = json!({"sent": indexes, "digests": digests});
        let mut f = self.lock();
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_data()
    }

    /// Records a request's final result (on disk with the next sync).
    pub fn done(&self, index: usize, digest: &str, result: &ItemResult) -> std::io::Result<()> {
        #[derive(serde::Serialize)]
        struct Done<'a> {
            done: usize,
            digest: &'a str,
            result: &'a ItemResult,
        }
        let record = Done {
            done: index,
            digest,
            result,
        };
        let mut line = serde_json::to_vec(&record).expect("results serialize");
        line.push(b'\n');
        self.lock().write_all(&line)
    }

    /// Puts everything recorded so far on disk.
    pub fn sync(&self) -> std::io::Result<()> {
        self.lock().sync_data()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The digest of what a request is.
pub fn digest(r: &Request) -> Digest {
    let mut h = Sha256::new();
    for part in [&r.id, &r.method, &r.url] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (k, v) in &r.headers {
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    for d in &r.depends_on {
        h.update(d.as_bytes());
        h.update([2]);
    }
    // JSON parts are hashed as they serialize, without building the text.
    if let Some(b) = &r.body {
        serde_json::to_writer(&mut h, b).expect("hashing cannot fail");
    }
    h.update([u8::from(r.body_base64)]);
    if let Some(d) = &r.header_details {
        serde_json::to_writer(&mut h, d).expect("hashing cannot fail");
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a journal's bytes as [`Journal::open`] reads them: how many
/// requests it records, or why it is refused (for fuzzing and tools).
pub fn check(text: &[u8]) -> Result<usize, String> {
    read(text).map(|(records, _)| records.len())
}

/// Reads a journal's text: the records by request, and how many bytes of
/// it are whole lines (a torn last line is left out).
fn read(text: &[u8]) -> Result<(HashMap<usize, Record>, usize), String> {
    let mut records: HashMap<usize, Record> = HashMap::new();
    let mut good = 0;
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let last = n + 1 == lines.len();
        let whole = line.ends_with(b"\n");
        let parsed = serde_json::from_slice::<Value>(line).ok();
        let Some(v) = parsed.filter(|_| whole) else {
            if last {
                break; // torn by a crash while it was written
            }
            return Err(format!(
                "line {} is damaged (not a whole JSON record); the journal cannot be trusted",
                n + 1
            ));
        };
        if n == 0 {
            if v != serde_json::from_str::<Value>(HEADER).expect("the header is JSON") {
                return Err(
                    "it is not an AzBatch journal (its first line is not {\"azbatchJournal\":1})"
                        .into(),
                );
            }
        } else {
            record(&v, &mut records).map_err(|why| format!("line {}: {why}", n + 1))?;
        }
        good += line.len();
    }
    Ok((records, good))
}

fn record(v: &Value, records: &mut HashMap<usize, Record>) -> Result<(), String> {
    let as_index = |v: &Value| v.as_u64().map(|i| i as usize);
    if let (Some(sent), Some(digests)) = (v["sent"].as_array(), v["digests"].as_array()) {
        for (i, d) in sent.iter().zip(digests) {
            let (Some(i), Some(d)) = (as_index(i), d.as_str()) else {
                return Err(
                    "a sent record holds something that is not an index and a digest".into(),
                );
            };
            records.entry(i).or_insert_with(|| Record {
                digest: d.to_string(),
                result: None,
            });
        }
        return Ok(());
    }
    let (Some(i), Some(d)) = (as_index(&v["done"]), v["digest"].as_str()) else {
        return Err("not a sent or done record".into());
    };
    let result = result_of(&v["result"]).ok_or("a done record without a readable result")?;
    records.insert(
        i,
        Record {
            digest: d.to_string(),
            result: Some(Box::new(result)),
        },
    );
    Ok(())
}

/// A result read back from its JSON.
fn result_of(v: &Value) -> Option<ItemResult> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let error = match v.get("error") {
        Some(Value::Object(e)) => {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let (scope, reason) = (text("throttleScope"), text("throttleReason"));
            Some(ErrorInfo {
                throttle: (scope.is_some() || reason.is_some())
                    .then(|| Box::new(Throttle { scope, reason })),
                ..ErrorInfo::new(e.get("code")?.as_str()?, e.get("message")?.as_str()?)
            })
        }
        _ => None,
    };
    Some(ItemResult {
        id: text("id")?,
        method: text("method").unwrap_or_default(),
        url: text("url").unwrap_or_default(),
        status: u16::try_from(v.get("status")?.as_u64()?).ok()?,
        headers: v
            .get("headers")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new),
        body: v.get("body").cloned().unwrap_or(Value::Null),
        attempts: u32::try_from(v.get("attempts")?.as_u64()?).ok()?,
        pages: u32::try_from(v.get("pages")?.as_u64()?).ok()?,
        error,
        body_encoding: (text("bodyEncoding").as_deref() == Some("base64")).then_some("base64"),
        note: text("note"),
        subscription: text("subscriptionId").map(|id| {
            Box::new(crate::result::SubscriptionInfo {
                subscription_id: id,
                subscription_name: text("subscriptionName").unwrap_or_default(),
                tenant_id: text("tenantId").unwrap_or_default(),
            })
        }),
        index: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("azbatch-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn req(id: &str, method: &str) -> Request {
        let mut r = Request::get(id, "/x?api-version=1");
        r.method = method.into();
        r
    }

    #[test]
    fn records_survive_reopening_and_a_torn_last_line_is_cut_off() {
        let path = temp("reopen");
        let j = Journal::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner only");
        }
        let (a, b, c) = (req("a", "GET"), req("b", "POST"), req("c", "PATCH"));
        assert_eq!(j.past(0, &a).unwrap(), Past::New(digest(&a)));
        let (da, db) = (digest(&a), digest(&b));
        j.sent(&[(0, &da), (1, &db)]).unwrap();
        let mut r = ItemResult::no_answer(0, "a", 1, ErrorInfo::new("x", "y"));
        (r.status, r.error, r.body, r.note) = (200, None, json!({"v": [1, "é"]}), Some("n".into()));
        j.done(0, &da, &r).unwrap();
        drop(j);
        // A crash in the middle of a record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"done":1,"digest":"#).unwrap();
        drop(f);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.recorded(), 2);
        assert_eq!(j.past(0, &a).unwrap(), Past::Done(Box::new(r)));
        assert_eq!(j.past(1, &b).unwrap(), Past::Sent(db.clone()));
        assert_eq!(j.past(2, &c).unwrap(), Past::New(digest(&c)));
        let e = j.past(1, &req("b", "PATCH")).unwrap_err().to_string();
        assert!(
            e.contains("request[1] (id \"b\")") && e.contains("different input"),
            "{e}"
        );
        // Appending after the cut-off line leaves a journal that reads whole.
        j.sent(&[(2, &digest(&c))]).unwrap();
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok()),
            "{text}"
        );
        assert_eq!(Journal::open(&path).unwrap().recorded(), 3);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn damage_and_other_files_are_refused() {
        let path = temp("damage");
        std::fs::write(
            &path,
            format!("{HEADER}\nnot json\n{{\"sent\":[0],\"digests\":[\"x\"]}}\n"),
        )
        .unwrap();
        let e = Journal::open(&path).unwrap_err().to_string();
        assert!(e.contains("line 2 is damaged"), "{e}");
        std::fs::write(&path, "{\"url\":\"/a\"}\n").unwrap();
        let e = Journal::open(&path).unwrap_err().to_string();
        assert!(e.contains("not an AzBatch journal"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_digest_sees_every_part_of_a_request() {
        let base = req("a", "POST");
        let mut variants = vec![];
        let mut v = base.clone();
        v.url.push('x');
        variants.push(v);
        let mut v = base.clone();
        v.body = Some(json!({"k": 1}));
        variants.push(v);
        let mut v = base.clone();
        v.headers.push(("If-Match".into(), "*".into()));
        variants.push(v);
        let mut v = base.clone();
        v.depends_on.push("z".into());
        variants.push(v);
        variants.push(req("b", "POST"));
        variants.push(req("a", "PATCH"));
        for v in variants {
            assert_ne!(digest(&v), digest(&base), "{v:?}");
        }
        assert_eq!(digest(&base), digest(&base.clone()));
        assert_eq!(digest(&base).len(), 32);
    }
}
