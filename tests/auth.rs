//! Token sources end to end against the emulator's identity endpoints: the
//! App Service / Automation managed identity, the IMDS, client secrets, the
//! Azure CLI (a stand-in `az`), and renewal after a 401. Renewal during long
//! runs and a static token that expires mid-run are tested on the paused clock
//! (`src/engine/tests.rs`). These tests set process environment
//! variables, so they hold one lock (nextest also runs each in its own process).

mod common;

use std::sync::Mutex;

use azbatch::{ItemResult, Job, Options};
use azbatch_emulator::{Config, Emulator};
use common::*;
use serde_json::{json, Value};

static ENV: Mutex<()> = Mutex::new(());

const VARS: [&str; 7] = [
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
];

/// Runs `f` with exactly `vars` set among the variables the sources read.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for v in VARS {
        std::env::remove_var(v);
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let out = f();
    for v in VARS {
        std::env::remove_var(v);
    }
    out
}

fn run(emu: &Emulator, auth: Value, extra: Value, n: usize) -> Vec<ItemResult> {
    let mut o = json!({"api": "arm", "endpoint": emu.url(), "auth": auth, "jitter": false});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    let b = Job::new(Options::from_json(&o.to_string()).unwrap());
    for i in 0..n {
        b.add_json(&json!({"url": pim_url(i % 3)}).to_string())
            .unwrap();
    }
    b.execute().unwrap().results
}

fn statuses(results: &[ItemResult]) -> Vec<u16> {
    results.iter().map(|r| r.status).collect()
}

fn auth_error(r: &ItemResult) -> (String, String) {
    let e = r.error.as_ref().expect("an error");
    (e.code.clone(), e.message.clone())
}

#[test]
fn managed_identity_of_an_automation_account() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let endpoint = format!("{}/msi/token", emu.url());
    let results = with_env(
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", "emulator-identity-header"),
        ],
        || run(&emu, json!({"type": "managedIdentity"}), json!({}), 6),
    );
    assert_eq!(statuses(&results), [200; 6]);
    assert_eq!(emu.tokens_issued(), 1, "one token, cached for the run");

    let results = with_env(
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", "wrong-header-value"),
        ],
        || run(&emu, json!({"type": "managedIdentity"}), json!({}), 2),
    );
    let (code, message) = auth_error(&results[0]);
    assert_eq!(
        (results[0].status, code.as_str()),
        (0, "AuthenticationFailed")
    );
    assert!(
        message.starts_with("managedIdentity:") && message.contains("HTTP 401"),
        "{message}"
    );
    assert!(!message.contains("wrong-header-value"));

    let results = with_env(&[("IDENTITY_ENDPOINT", &endpoint)], || {
        run(&emu, json!({"type": "managedIdentity"}), json!({}), 1)
    });
    assert!(
        auth_error(&results[0]).1.contains("IDENTITY_HEADER is not"),
        "{:?}",
        results[0].error
    );
}

#[test]
fn managed_identity_of_a_vm_with_a_user_assigned_identity() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let results = with_env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &emu.url())], || {
        run(
            &emu,
            json!({"type": "managedIdentity", "clientId": "11111111-2222-3333-4444-555555555555"}),
            json!({}),
            3,
        )
    });
    assert_eq!(statuses(&results), [200; 3]);
    assert_eq!(emu.tokens_issued(), 1);
}

#[test]
fn client_secret_against_the_login_host() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let vars = |secret: &'static str| {
        vec![
            ("AZURE_TENANT_ID", "contoso.example"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", secret),
        ]
    };
    let url = emu.url();
    let mut good = vars("emulator-client-secret");
    good.push(("AZURE_AUTHORITY_HOST", &url));
    let results = with_env(&good, || {
        run(&emu, json!({"type": "clientSecret"}), json!({}), 4)
    });
    assert_eq!(statuses(&results), [200; 4]);

    let mut bad = vars("s3cr3t-that-must-not-leak");
    bad.push(("AZURE_AUTHORITY_HOST", &url));
    let results = with_env(&bad, || {
        run(&emu, json!({"type": "clientSecret"}), json!({}), 2)
    });
    let (code, message) = auth_error(&results[0]);
    assert_eq!(code, "AuthenticationFailed");
    assert!(
        message.contains("clientSecret") && message.contains("AADSTS7000215"),
        "{message}"
    );
    assert!(!serde_json::to_string(&results).unwrap().contains("s3cr3t"));

    let results = with_env(&[("AZURE_TENANT_ID", "t")], || {
        run(&emu, json!({"type": "clientSecret"}), json!({}), 1)
    });
    assert!(
        auth_error(&results[0])
            .1
            .contains("AZURE_CLIENT_ID, AZURE_CLIENT_SECRET not set"),
        "{:?}",
        results[0].error
    );
}

/// A stand-in `az` that records its arguments and prints token number N from
/// `tokenN` (or `token`) in its folder.
fn fake_az(dir: &std::path::Path, tokens: &[&str]) -> String {
    for (i, t) in tokens.iter().enumerate() {
        std::fs::write(dir.join(format!("token{}", i + 1)), t).unwrap();
    }
    std::fs::write(dir.join("token"), tokens.last().unwrap()).unwrap();
    let script = dir.join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nd='{}'\necho \"$@\" >> \"$d/calls\"\nn=$(wc -l < \"$d/calls\" | tr -d ' ')\nf=\"$d/token$n\"; [ -f \"$f\" ] || f=\"$d/token\"\nprintf '{{\"accessToken\":\"%s\",\"expires_on\":%s,\"tokenType\":\"Bearer\"}}' \"$(cat \"$f\")\" \"$(( $(date +%s) + 3600 ))\"\n",
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("azbatch-{name}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Lifetimes and expiries no clock can hold (a JWT `exp` of 1e300 or 1e19, an
/// `expires_on` of -1) are no expiry: the run goes on, nothing panics.
#[test]
fn odd_expiries_never_stop_the_engine() {
    use base64::Engine as _;
    for exp in ["1e300", "1e19", "-1"] {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"aud":"x","exp":{exp}}}"#));
        let jwt = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        let config = Config {
            subscriptions: 3,
            token: Some(jwt.clone()),
            ..Config::default()
        };
        let emu = Emulator::start(config).unwrap();
        let results = with_env(&[], || run_with_token(&emu, &jwt, 3));
        assert_eq!(statuses(&results), [200; 3], "exp {exp}: {results:?}");
    }
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    for expires_on in ["-1", "1e300", "\"99999999999999999999\""] {
        let dir = temp_dir("az-odd");
        let script = dir.join("az");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '{{\"accessToken\":\"{TOKEN}\",\"expires_on\":{expires_on}}}'\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let results = with_env(&[], || {
            run(
                &emu,
                json!({"type": "azureCli", "azPath": script}),
                json!({}),
                2,
            )
        });
        assert_eq!(
            statuses(&results),
            [200; 2],
            "expires_on {expires_on}: {results:?}"
        );
    }
}

fn run_with_token(emu: &Emulator, token: &str, n: usize) -> Vec<ItemResult> {
    let o = json!({"api": "arm", "endpoint": emu.url(), "token": token, "jitter": false});
    let b = Job::new(Options::from_json(&o.to_string()).unwrap());
    for i in 0..n {
        b.add_json(&json!({"url": pim_url(i % 3)}).to_string())
            .unwrap();
    }
    b.execute().unwrap().results
}

#[test]
fn the_azure_cli_and_one_renewal_after_a_401() {
    let emu = emulator(Config {
        subscriptions: 3,
        ..Config::default()
    });
    let dir = temp_dir("az");
    // The first token is refused; after the 401 AzBatch asks az again and retries.
    let az = fake_az(&dir, &["stale-token", TOKEN]);
    let results = with_env(&[], || {
        run(
            &emu,
            json!({"type": "azureCli", "azPath": az}),
            json!({"concurrency": 1}),
            3,
        )
    });
    assert_eq!(statuses(&results), [200; 3]);
    assert!(
        results.iter().all(|r| r.attempts == 2),
        "{:?}",
        results.iter().map(|r| r.attempts).collect::<Vec<_>>()
    );
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    assert_eq!(
        calls.lines().count(),
        2,
        "one renewal, not one per item: {calls}"
    );
    assert!(
        calls.contains(
            "account get-access-token --resource https://management.azure.com/ --output json"
        ),
        "{calls}"
    );

    // A token that is refused even when fresh ends as 401 after one renewal.
    let dir = temp_dir("az-bad");
    let az = fake_az(&dir, &["bad-1", "bad-2"]);
    let results = with_env(&[], || {
        run(
            &emu,
            json!({"type": "azureCli", "azPath": az}),
            json!({}),
            2,
        )
    });
    assert_eq!(statuses(&results), [401, 401]);
    assert_eq!(results[0].attempts, 2);

    let results = with_env(&[], || {
        run(
            &emu,
            json!({"type": "azureCli", "azPath": "/nonexistent/az"}),
            json!({}),
            1,
        )
    });
    assert!(
        auth_error(&results[0]).1.contains("is not installed"),
        "{:?}",
        results[0].error
    );
}

#[test]
fn the_cloud_picks_the_resource() {
    let emu = emulator(Config::default());
    let dir = temp_dir("az-cloud");
    let az = fake_az(&dir, &[TOKEN]);
    with_env(&[], || {
        let o = json!({"api": "graph", "cloud": "AzureUSGovernment", "endpoint": emu.url(), "auth": {"type": "azureCli", "azPath": az}});
        let b = Job::new(Options::from_json(&o.to_string()).unwrap());
        b.add_json(r#"{"url":"/users?$top=1"}"#).unwrap();
        assert_eq!(b.execute().unwrap().results[0].status, 200);
    });
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    assert!(
        calls.contains("--resource https://graph.microsoft.us "),
        "{calls}"
    );
}
