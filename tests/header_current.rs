//! The checked-in C header must be what cbindgen generates from src/ffi.rs today.
//! `UPDATE_HEADER=1 cargo test --release --test header_current` rewrites it.

use std::path::Path;

#[test]
fn header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    // cbindgen.toml: the constants of `pve_entraid_result` are `PVE_ENTRAID_<CODE>`, without `RESULT_`.
    let generated = String::from_utf8(generated).expect("header is UTF-8").replace("PVE_ENTRAID_RESULT_", "PVE_ENTRAID_");
    let generated = generated.into_bytes();
    let path = root.join("include/pve_entraid.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/pve_entraid.h");
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "include/pve_entraid.h is stale; run UPDATE_HEADER=1 cargo test --release --test header_current\n--- generated ---\n{}",
        String::from_utf8_lossy(&generated)
    );
}

#[test]
fn header_declares_the_abi_of_the_design() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/pve_entraid.h")).unwrap();
    for needle in [
        "const char *pve_entraid_version(void);",
        "pve_entraid_result pve_entraid_auth_url(const uint8_t *req, size_t req_len, char **out);",
        "pve_entraid_result pve_entraid_login(const uint8_t *req, size_t req_len, char **out);",
        "pve_entraid_result pve_entraid_map(const uint8_t *req, size_t req_len, char **out);",
        "pve_entraid_result pve_entraid_check(const uint8_t *req, size_t req_len, char **out);",
        "pve_entraid_result pve_entraid_check_config(const uint8_t *req, size_t req_len, char **out);",
        "void pve_entraid_free(char *s);",
        "PVE_ENTRAID_INTERNAL_PANIC = 90",
        "PVE_ENTRAID_OK = 0",
    ] {
        assert!(header.contains(needle), "header lacks {needle}");
    }
}
