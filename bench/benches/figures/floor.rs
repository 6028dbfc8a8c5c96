//! The floor of a warm login's CPU cost on the node: the work no implementation can skip, done
//! with the same primitives (ring, the library's HTTP client) on the same emulator:
//! the RS256 check of an ID token, the AEAD open of a sealed state, the consumed-state file
//! (one O_EXCL create), and one HTTPS request and answer on the kept-alive connection.
//! Measured one round per login, interleaved with the logins, so machine load hits both alike.

use crate::realm::Realm;
use crate::stats::thread_cpu;
use pve_entraid::config::RealmConfig;
use pve_entraid::http::{Transport, UreqTransport, MAX_METADATA_BODY};
use pve_entraid::jwt::{b64url_decode, public_key, rsa_key_from_pem, sign_rs256, RsaPublicKey};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const SIGNING_KEY: &str = include_str!("../../../tests/emulator/keys/signing-1.key");

pub struct Floor {
    public: RsaPublicKey,
    signed: String,
    signature: Vec<u8>,
    aead: LessSafeKey,
    sealed: Vec<u8>,
    dir: PathBuf,
    http: UreqTransport,
    url: String,
    files: u64,
    /// CPU time of each part: RS256, AEAD, file, HTTPS.
    pub parts: [Duration; 4],
    pub rounds: u32,
}

impl Floor {
    pub fn new(realm: &Realm) -> Floor {
        let private = rsa_key_from_pem(SIGNING_KEY).expect("emulator signing key");
        // An ID token of the size the emulator issues (claims as in the validation figure).
        let claims = json!({
            "aud": entra_emulator::CLIENT_ID, "iss": format!("{}/{}/v2.0", realm.emu.url(), entra_emulator::TENANT),
            "iat": 0, "nbf": 0, "exp": 1, "nonce": "n".repeat(32), "ver": "2.0", "tid": entra_emulator::TENANT,
            "oid": entra_emulator::ALICE_OID, "sub": "s".repeat(43), "preferred_username": "alice@contoso.example",
            "name": "Alice Example", "groups": [entra_emulator::ADMINS_GROUP], "roles": ["PVE.Admin"],
        });
        let token = sign_rs256(&private, &json!({"typ": "JWT", "alg": "RS256", "kid": "k"}), &claims);
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let aead = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).expect("key"));
        // A state's size: realm, nonce, PKCE verifier, redirect URL, expiry, binding hash.
        let mut sealed = vec![1u8; 300];
        let tag = aead.seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(b"floor"), &mut sealed).expect("seal");
        sealed.extend_from_slice(tag.as_ref());
        let dir = realm.dir.join("floor");
        std::fs::create_dir_all(&dir).expect("floor directory");
        let req = realm.request();
        let cfg = RealmConfig::from_json(&req["config"]).expect("realm config");
        let http = UreqTransport::new(&cfg).expect("transport");
        let url = cfg.discovery_url();
        http.get(&url, MAX_METADATA_BODY).expect("warm connection");
        Floor {
            public: public_key(&private),
            signed: signed.to_string(),
            signature: b64url_decode(signature).expect("signature"),
            aead,
            sealed,
            dir,
            http,
            url,
            files: 0,
            parts: [Duration::ZERO; 4],
            rounds: 0,
        }
    }

    /// One round of the floor's work.
    pub fn round(&mut self) {
        let mut t = thread_cpu();
        let mut lap = |i: usize, parts: &mut [Duration; 4]| {
            let now = thread_cpu();
            parts[i] += now - t;
            t = now;
        };
        let ok = self.public.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, self.signed.as_bytes(), &self.signature).is_ok();
        assert!(ok, "the floor's token verifies");
        lap(0, &mut self.parts);
        let mut buf = self.sealed.clone();
        self.aead.open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(b"floor"), &mut buf).expect("open");
        lap(1, &mut self.parts);
        self.files += 1;
        std::fs::OpenOptions::new().write(true).create_new(true).open(self.dir.join(format!("{:032x}", self.files))).expect("create");
        lap(2, &mut self.parts);
        let answer = self.http.get(&self.url, MAX_METADATA_BODY).expect("HTTPS GET");
        assert_eq!(answer.status, 200);
        lap(3, &mut self.parts);
        self.rounds += 1;
    }

    pub fn per_round(&self) -> Duration {
        self.parts.iter().sum::<Duration>() / self.rounds.max(1)
    }

    pub fn describe(&self) -> String {
        let us = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6 / self.rounds.max(1) as f64);
        format!(
            "{} µs = RS256 {} + state AEAD {} + consumed-state file {} + one HTTPS GET on the kept-alive connection {}",
            us(self.parts.iter().sum()),
            us(self.parts[0]),
            us(self.parts[1]),
            us(self.parts[2]),
            us(self.parts[3])
        )
    }
}
