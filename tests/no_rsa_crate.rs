//! The shipped library contains no code of the `rsa` crate (RUSTSEC-2023-0071, private-key
//! timing, no fixed release) nor of the big-number crates behind openidconnect's own signature
//! code (`num-bigint-dig` for RSA, `crypto-bigint` for its elliptic curves). openidconnect 4 depends on `rsa`
//! unconditionally, so `cargo tree` lists it; only what the library calls is linked, and all our
//! RSA goes through ring. Calling openidconnect's RSA verification or the `rsa` crate makes this
//! test fail. Reads the release `libpve_entraid.so` that `cargo test --release` builds next to
//! the test binary (the same file `cargo build --release` links into target/release), with
//! binutils' `nm`.

use std::path::PathBuf;
use std::process::Command;

const FORBIDDEN_CRATES: [&str; 3] = ["rsa", "num_bigint_dig", "crypto_bigint"];

/// The forbidden crates named in one demangled symbol: a crate path starts a symbol or follows
/// a character that cannot end a path segment, so ring's `ring::rsa::…` and our `jwt::rsa_…`
/// do not count.
fn forbidden_crates_in(symbol: &str) -> Vec<&'static str> {
    FORBIDDEN_CRATES
        .into_iter()
        .filter(|krate| {
            symbol.match_indices(&format!("{krate}::")).any(|(at, _)| {
                let before = symbol[..at].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            })
        })
        .collect()
}

/// The `.so` this cargo run built: next to the test binary in target/<profile>/deps (cargo test
/// does not copy it up to target/<profile>, which may hold an older build).
fn release_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("target/<profile>/deps").join("libpve_entraid.so")
}

#[test]
fn the_filter_finds_rsa_crate_symbols_only() {
    for hit in [
        "<rsa::key::RsaPublicKey as rsa::traits::keys::PublicKeyParts>::n",
        "rsa::pkcs1v15::verify",
        "num_bigint_dig::biguint::BigUint::modpow",
        "core::ptr::drop_in_place<crypto_bigint::uint::Uint<64>>",
        "<openidconnect::core::jwk::CoreJsonWebKey as x>::verify_signature::{{closure}}<rsa::x>",
    ] {
        assert!(!forbidden_crates_in(hit).is_empty(), "{hit}");
    }
    for miss in [
        "ring::rsa::public_key::PublicKey::from_modulus_and_exponent",
        "ring_core_0_17_14__bn_mul_mont",
        "pve_entraid::jwt::rsa_key_from_pem",
        "openidconnect::authorization::AuthorizationRequest<AD,P,RT>::url",
        "my_rsa::helper",
    ] {
        assert!(forbidden_crates_in(miss).is_empty(), "{miss}");
    }
}

#[test]
fn the_release_library_links_no_rsa_crate_code() {
    let so = release_library();
    assert!(so.is_file(), "{} missing (run under cargo test --release)", so.display());
    let out = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {}: {}", so.display(), String::from_utf8_lossy(&out.stderr));
    let symbols = String::from_utf8_lossy(&out.stdout);
    // The symbols are demangled and present: ring's own RSA verification is there.
    assert!(symbols.lines().any(|l| l.contains("ring::rsa::")), "no ring::rsa:: symbol in {}", so.display());
    let offending: Vec<&str> = symbols.lines().filter(|l| !forbidden_crates_in(l).is_empty()).collect();
    assert!(
        offending.is_empty(),
        "{} links code of {FORBIDDEN_CRATES:?} (RUSTSEC-2023-0071; use ring, see docs/DESIGN.md):\n{}",
        so.display(),
        offending.iter().take(20).copied().collect::<Vec<_>>().join("\n")
    );
}
