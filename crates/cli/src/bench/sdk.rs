//! The Microsoft Graph .NET SDK as a peer in the benchmark: `Peer.cs`,
//! compiled with the C# compiler of `../shared/tools` against its `graph-sdk`
//! folder (Microsoft.Graph 6.10.0 and its dependencies) and run with its
//! `dotnet` against the emulator. Where those tools are not beside the
//! repository (or named by `AZBATCH_SHARED_TOOLS`), the row says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use azbatch_emulator::Emulator;

use super::{Measured, TOKEN};

/// Rounds of NewBatchWithFailedRequests after the first send.
pub const ROUNDS: usize = 5;

const SOURCE: &str = include_str!("Peer.cs");
const RUNTIME_CONFIG: &str = r#"{"runtimeOptions":{"tfm":"net10.0","framework":{"name":"Microsoft.NETCore.App","version":"10.0.0"}}}"#;

/// The compiled peer, in a folder of its own.
pub struct Peer {
    dir: PathBuf,
    dotnet: PathBuf,
}

/// `shared/tools/bin`: from `AZBATCH_SHARED_TOOLS`, else beside the
/// repository this binary was built in.
fn tools() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("AZBATCH_SHARED_TOOLS") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.ancestors()
        .map(|a| a.join("../shared/tools/bin"))
        .find(|p| p.join("csc").is_file())
        .ok_or_else(|| {
            "no ../shared/tools beside the repository (set AZBATCH_SHARED_TOOLS)".to_string()
        })
}

fn dlls(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dll"))
        .collect();
    out.sort();
    Ok(out)
}

impl Peer {
    /// Compiles the peer; an error says why it cannot run here.
    pub fn build() -> Result<Peer, String> {
        let bin = tools()?;
        let root = Command::new(bin.join("dotnet-tools-root"))
            .output()
            .map_err(|e| format!("dotnet-tools-root: {e}"))?;
        let root = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim());
        let sdk = dlls(&root.join("graph-sdk"))?;
        let refs = dlls(&root.join("ref/net10.0"))?;
        let dir = std::env::temp_dir().join(format!("azbatch-bench-sdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let peer = Peer {
            dir,
            dotnet: bin.join("dotnet"),
        };
        let source = peer.dir.join("Peer.cs");
        std::fs::write(&source, SOURCE).map_err(|e| e.to_string())?;
        let out = Command::new(bin.join("csc"))
            .args([
                "-nologo",
                "-noconfig",
                "-nostdlib",
                "-nullable:enable",
                "-nowarn:CS1701,CS1702",
            ])
            .arg(format!("-out:{}", peer.dir.join("Peer.dll").display()))
            .args(
                refs.iter()
                    .chain(&sdk)
                    .map(|r| format!("-r:{}", r.display())),
            )
            .arg(&source)
            .output()
            .map_err(|e| format!("csc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "csc failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        for dll in &sdk {
            std::fs::copy(dll, peer.dir.join(dll.file_name().expect("a file")))
                .map_err(|e| e.to_string())?;
        }
        std::fs::write(peer.dir.join("Peer.runtimeconfig.json"), RUNTIME_CONFIG)
            .map_err(|e| e.to_string())?;
        Ok(peer)
    }

    /// Sends `urls` (`/users/{id}` to PATCH, or `/users/{id}/events` to GET);
    /// the measure and how many failed.
    pub fn run(&self, emu: &Emulator, urls: &[String], method: &str) -> Result<(Measured, usize)> {
        let file = self.dir.join("urls.txt");
        std::fs::write(&file, urls.join("\n"))?;
        let before = emu.ops().len();
        let out = Command::new(&self.dotnet)
            .arg(self.dir.join("Peer.dll"))
            .arg(format!("{}/v1.0", emu.url()))
            .arg(TOKEN)
            .arg(&file)
            .arg(method)
            .arg(ROUNDS.to_string())
            .output()
            .context("running the Graph SDK peer")?;
        if !out.status.success() {
            bail!(
                "the Graph SDK peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [seconds, _, failed] = fields[..] else {
            bail!("the Graph SDK peer printed {text:?}");
        };
        let ops = emu.ops();
        let new = &ops[before..];
        let failed: usize = failed.parse()?;
        Ok((
            Measured {
                ran: true,
                seconds: seconds.parse()?,
                attempts: new.len(),
                throttled: new.iter().filter(|o| o.status == 429).count(),
                failed,
                ..Measured::default()
            },
            failed,
        ))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
