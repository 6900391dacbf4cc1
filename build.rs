//! Generates the C header into OUT_DIR; `tests/header.rs` checks that the
//! checked-in `include/azbatch.h` is the same.

fn main() {
    // A soname (install name on macOS) lets a host that loaded the library by
    // absolute path bind DllImport("azbatch") to that copy (powershell/src/Native.cs).
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libazbatch.so"),
        Ok("macos") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libazbatch.dylib")
        }
        _ => {}
    }
    // cbindgen reads the whole crate (constants too), so any source change counts.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/ffi/ABI.md");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    // The ownership rules live in one file, which is also the module's doc.
    let rules = std::fs::read_to_string(format!("{dir}/src/ffi/ABI.md")).expect("src/ffi/ABI.md");
    let mut header = String::from("/*\n");
    for line in rules.trim_end().lines() {
        header.push_str(&format!(
            " *{}{}\n",
            if line.is_empty() { "" } else { " " },
            line.replace('`', "")
        ));
    }
    header.push_str(" */");
    config.header = Some(header);
    config.after_includes = Some(format!(
        "\n/* The version of this header; batch_version() returns the same string. */\n#define AZBATCH_VERSION \"{}\"",
        std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION")
    ));
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write_to_file(format!("{out}/azbatch.h"));
}
