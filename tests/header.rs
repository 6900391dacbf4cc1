//! The checked-in C header must be exactly what cbindgen makes from the code
//! now, export exactly the ABI's functions, and carry the crate's version.
//! `AZBATCH_BLESS=1 cargo test --test header` rewrites it.

use std::ffi::CStr;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/azbatch.h"));
const HEADER: &str = "include/azbatch.h";

#[test]
fn checked_in_header_matches_cbindgen() {
    let path = format!("{}/{HEADER}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("AZBATCH_BLESS").is_some() {
        std::fs::write(&path, GENERATED).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == GENERATED,
        "{HEADER} is stale: it differs from what cbindgen generates now. Run `AZBATCH_BLESS=1 cargo test --test header` and commit it."
    );
}

#[test]
fn header_exports_exactly_the_abi() {
    let mut functions: Vec<&str> = GENERATED
        .lines()
        .filter(|l| l.contains('(') && l.trim_end().ends_with(");") && !l.starts_with("//"))
        .filter_map(|l| l.split('(').next()?.rsplit([' ', '*']).next())
        .collect();
    functions.sort();
    let mut want = vec![
        "batch_new",
        "batch_add",
        "batch_execute",
        "batch_start",
        "batch_next",
        "batch_progress",
        "batch_cancel",
        "batch_free",
        "batch_string_free",
        "batch_url_api",
        "batch_version",
        "batch_info",
        "batch_open",
        "batch_close_input",
        "batch_set_token",
    ];
    want.sort();
    assert_eq!(functions, want);
    for line in GENERATED.lines().filter(|l| l.starts_with("#define")) {
        let name = line.split_whitespace().nth(1).unwrap();
        assert!(name.starts_with("AZBATCH_"), "{name} leaks into the header");
    }
}

#[test]
fn versions_agree() {
    let want = format!("#define AZBATCH_VERSION \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(GENERATED.contains(&want), "header lacks {want}");
    let v = unsafe { CStr::from_ptr(azbatch::ffi::batch_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// The version is written once, in the workspace's Cargo.toml; the header,
/// `batch_version()` and `batch_info` must say the same (the module manifest
/// is checked against it too, by powershell/tests/module_check.py).
#[test]
fn the_workspace_version_is_the_one_everywhere() {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let section = &toml[toml
        .find("[workspace.package]")
        .expect("a [workspace.package]")..];
    let written = section
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version in [workspace.package]");
    assert!(GENERATED.contains(&format!("#define AZBATCH_VERSION \"{written}\"")));
    let v = unsafe { CStr::from_ptr(azbatch::ffi::batch_version()) };
    assert_eq!(v.to_str().unwrap(), written);
    let mut info: *mut std::ffi::c_char = std::ptr::null_mut();
    let status = unsafe { azbatch::ffi::batch_info(&mut info) };
    assert_eq!(status, azbatch::ffi::status::AzBatchStatus::AZBATCH_OK);
    let text = unsafe { CStr::from_ptr(info) }
        .to_str()
        .unwrap()
        .to_string();
    unsafe { azbatch::ffi::batch_string_free(info) };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], written);
}
