//! CPU per push spent on RFC 8291 encryption, and the P-256 ECDH backends it
//! could use. Each push needs a fresh ephemeral key pair and one agreement
//! with the device's key (RFC 8291 §2: "an application server generates an
//! ECDH key pair" per message), which is nearly all of the cost.
//!
//! Prints microseconds per operation (median of 7 rounds of 2,000) for:
//! the gateway's `notify::ece::encrypt` (ring) on a 3 KiB payload, and
//! key generation + agreement alone with ring (what the gateway uses),
//! RustCrypto's `p256` and OpenSSL. Prints figures; asserts nothing.
//!
//! Run: `cargo bench --bench push_crypto`

use std::time::Instant;

use lemonade::notify::ece;

const PER_ROUND: u32 = 2_000;
const ROUNDS: usize = 7;

/// Median microseconds per call of `op` over `ROUNDS` rounds.
fn measure(mut op: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                op();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    // The device's key pair, as a browser would make it.
    let rng = ring::rand::SystemRandom::new();
    let device = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
        .expect("device key");
    let p256dh = device
        .compute_public_key()
        .expect("public key")
        .as_ref()
        .to_vec();
    let auth = [7u8; 16];
    let payload = vec![b'x'; 3 * 1024];

    let gateway = measure(|| {
        let body = ece::encrypt(&p256dh, &auth, &payload).expect("encrypt");
        std::hint::black_box(body);
    });

    let ring_ecdh = measure(|| {
        let key = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
            .expect("key");
        let public = key.compute_public_key().expect("public key");
        std::hint::black_box(public.as_ref());
        let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &p256dh);
        let secret = ring::agreement::agree_ephemeral(key, &peer, |s| s.to_vec()).expect("agree");
        std::hint::black_box(secret);
    });

    let peer = p256::PublicKey::from_sec1_bytes(&p256dh).expect("p256 key");
    let rustcrypto_ecdh = measure(|| {
        let key = p256::ecdh::EphemeralSecret::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let public = p256::EncodedPoint::from(key.public_key());
        std::hint::black_box(public.as_bytes());
        let secret = key.diffie_hellman(&peer);
        std::hint::black_box(secret.raw_secret_bytes());
    });

    let group =
        openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("group");
    let mut ctx = openssl::bn::BigNumContext::new().expect("bn context");
    let point = openssl::ec::EcPoint::from_bytes(&group, &p256dh, &mut ctx).expect("point");
    let device_key = openssl::pkey::PKey::from_ec_key(
        openssl::ec::EcKey::from_public_key(&group, &point).expect("ec key"),
    )
    .expect("pkey");
    let openssl_ecdh = measure(|| {
        let key =
            openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("key"))
                .expect("pkey");
        let mut ctx = openssl::bn::BigNumContext::new().expect("bn context");
        let public = key
            .ec_key()
            .expect("ec key")
            .public_key()
            .to_bytes(
                &group,
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .expect("public key");
        std::hint::black_box(public);
        let mut deriver = openssl::derive::Deriver::new(&key).expect("deriver");
        deriver.set_peer(&device_key).expect("peer");
        std::hint::black_box(deriver.derive_to_vec().expect("derive"));
    });

    println!(
        "RFC 8291 encryption per push, microseconds (median of {ROUNDS} rounds of {PER_ROUND})"
    );
    println!("| operation | µs |");
    println!("| --- | ---: |");
    println!("| gateway `ece::encrypt`, 3 KiB payload (ring) | {gateway:.1} |");
    println!("| P-256 key pair + ECDH, ring (used) | {ring_ecdh:.1} |");
    println!("| P-256 key pair + ECDH, RustCrypto p256 | {rustcrypto_ecdh:.1} |");
    println!("| P-256 key pair + ECDH, OpenSSL | {openssl_ecdh:.1} |");
}
