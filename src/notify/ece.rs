//! RFC 8291 message encryption for Web Push (`Content-Encoding: aes128gcm`, RFC 8188).
//!
//! The push service only ever sees ciphertext: each payload is encrypted to the
//! device's P-256 key (`p256dh`) and authentication secret (`auth`) with a fresh
//! ephemeral key and salt. Everything is done in one record of `rs = 4096`.
//!
//! The work is split so the parts that matter can be checked against the RFC's
//! worked example: [`derive_content_keys`] is a pure function of the ECDH secret,
//! both public keys, the auth secret and the salt; [`seal_record`] turns those
//! keys into the body. [`encrypt`] only adds randomness and the ECDH agreement.

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::hkdf::{self, Salt, HKDF_SHA256};
use ring::rand::SystemRandom;

/// The record size written into the header; also the largest body we send,
/// since push services must accept at least 4096 bytes (RFC 8030 §7.2).
pub const RECORD_SIZE: u32 = 4096;

/// Length of an uncompressed P-256 point (`0x04 || x || y`).
pub const P256_PUBLIC_KEY_LEN: usize = 65;

/// Length of the subscription's authentication secret.
pub const AUTH_SECRET_LEN: usize = 16;

/// Length of the per-message random salt.
pub const SALT_LEN: usize = 16;

/// salt (16) + rs (4) + idlen (1) + keyid (the 65-byte ephemeral public key).
pub const HEADER_LEN: usize = SALT_LEN + 4 + 1 + P256_PUBLIC_KEY_LEN;

const TAG_LEN: usize = 16;

/// The padding delimiter of the last (and only) record (RFC 8188 §2).
const LAST_RECORD_DELIMITER: u8 = 0x02;

/// The most plaintext that fits one 4096-byte body: 4096 − 86 (header)
/// − 16 (tag) − 1 (delimiter) = 3993 bytes.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - TAG_LEN - 1;

/// Why a payload could not be encrypted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EceError {
    /// `p256dh` is not a 65-byte uncompressed point on P-256.
    #[error("the subscription's p256dh key is not an uncompressed P-256 point")]
    InvalidPublicKey,
    /// `auth` is not 16 bytes.
    #[error("the subscription's auth secret must be 16 bytes, got {0}")]
    InvalidAuthSecret(usize),
    /// The plaintext does not fit one record.
    #[error("plaintext of {len} bytes exceeds the {max}-byte limit")]
    PlaintextTooLarge { len: usize, max: usize },
    /// The system random generator or the cipher failed.
    #[error("cryptographic operation failed")]
    Crypto,
}

impl EceError {
    /// Bad keys or an oversized payload never get better by retrying.
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Permanent
    }
}

/// The content-encryption key and nonce of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentKeys {
    /// The AES-128-GCM key (CEK).
    pub cek: [u8; 16],
    /// The nonce of record 0 (no XOR needed for a single record).
    pub nonce: [u8; 12],
}

/// Checks a subscription's keys as a browser gave them: `p256dh` must be an
/// uncompressed point that really lies on P-256 (proved by an ECDH agreement
/// with a throwaway key), `auth` exactly 16 bytes.
pub fn validate_keys(p256dh: &[u8], auth: &[u8]) -> Result<(), EceError> {
    if auth.len() != AUTH_SECRET_LEN {
        return Err(EceError::InvalidAuthSecret(auth.len()));
    }
    if p256dh.len() != P256_PUBLIC_KEY_LEN || p256dh[0] != 0x04 {
        return Err(EceError::InvalidPublicKey);
    }
    let rng = SystemRandom::new();
    let throwaway =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| EceError::Crypto)?;
    agreement::agree_ephemeral(
        throwaway,
        &UnparsedPublicKey::new(&ECDH_P256, p256dh),
        |_| (),
    )
    .map_err(|_| EceError::InvalidPublicKey)
}

/// Encrypts `plaintext` for one subscription: a fresh ephemeral key and salt,
/// one record, `rs = 4096`. The result is the request body.
pub fn encrypt(p256dh: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EceError> {
    if auth.len() != AUTH_SECRET_LEN {
        return Err(EceError::InvalidAuthSecret(auth.len()));
    }
    if p256dh.len() != P256_PUBLIC_KEY_LEN || p256dh[0] != 0x04 {
        return Err(EceError::InvalidPublicKey);
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::PlaintextTooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT,
        });
    }
    // The salt only has to be unpredictable and never repeat: the thread's
    // CSPRNG (seeded from the OS) saves a system call per push. The private
    // key comes from the OS, the only source ring takes.
    let mut salt = [0u8; SALT_LEN];
    rand::thread_rng().fill_bytes(&mut salt);
    let as_private = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new())
        .map_err(|_| EceError::Crypto)?;
    let as_public = as_private
        .compute_public_key()
        .map_err(|_| EceError::Crypto)?;
    let keys = agreement::agree_ephemeral(
        as_private,
        &UnparsedPublicKey::new(&ECDH_P256, p256dh),
        |ecdh_secret| derive_content_keys(ecdh_secret, p256dh, as_public.as_ref(), auth, &salt),
    )
    .map_err(|_| EceError::InvalidPublicKey)??;
    seal_record(&keys, &salt, as_public.as_ref(), plaintext)
}

/// RFC 8291 §3.3–3.4 and RFC 8188 §2.2: from the ECDH secret to the content
/// key and nonce. Pure, so it can be checked against the RFC's example.
pub fn derive_content_keys(
    ecdh_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth: &[u8],
    salt: &[u8],
) -> Result<ContentKeys, EceError> {
    // PRK_key = HMAC-SHA-256(auth_secret, ecdh_secret)
    let prk_key = Salt::new(HKDF_SHA256, auth).extract(ecdh_secret);
    // IKM = HKDF-Expand(PRK_key, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    let mut ikm = [0u8; 32];
    prk_key
        .expand(
            &[b"WebPush: info\0", ua_public, as_public],
            OutputLen(ikm.len()),
        )
        .and_then(|okm| okm.fill(&mut ikm))
        .map_err(|_| EceError::Crypto)?;
    // PRK = HMAC-SHA-256(salt, IKM); CEK and NONCE expand from it.
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let mut keys = ContentKeys {
        cek: [0u8; 16],
        nonce: [0u8; 12],
    };
    prk.expand(&[b"Content-Encoding: aes128gcm\0"], OutputLen(16))
        .and_then(|okm| okm.fill(&mut keys.cek))
        .map_err(|_| EceError::Crypto)?;
    prk.expand(&[b"Content-Encoding: nonce\0"], OutputLen(12))
        .and_then(|okm| okm.fill(&mut keys.nonce))
        .map_err(|_| EceError::Crypto)?;
    Ok(keys)
}

/// Writes the aes128gcm header (salt, rs, keyid = `as_public`) and the single
/// encrypted record (`plaintext || 0x02`, then the GCM tag).
pub fn seal_record(
    keys: &ContentKeys,
    salt: &[u8; SALT_LEN],
    as_public: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EceError> {
    let key_id_len = u8::try_from(as_public.len()).map_err(|_| EceError::InvalidPublicKey)?;
    let mut body =
        Vec::with_capacity(SALT_LEN + 5 + as_public.len() + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(key_id_len);
    body.extend_from_slice(as_public);
    let header_len = body.len();
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD_DELIMITER);

    let key = UnboundKey::new(&AES_128_GCM, &keys.cek).map_err(|_| EceError::Crypto)?;
    let key = LessSafeKey::new(key);
    let mut record = body.split_off(header_len);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(keys.nonce),
        Aad::empty(),
        &mut record,
    )
    .map_err(|_| EceError::Crypto)?;
    body.extend_from_slice(&record);
    Ok(body)
}

/// An HKDF output length, as ring wants it.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

// The queue trims summaries to the same limit without knowing this module.
const _: () = assert!(MAX_PLAINTEXT == crate::mail::MAX_PAYLOAD_TEXT);

// Compile-time check that the AEAD tag length matches what MAX_PLAINTEXT assumes.
const _: () = assert!(TAG_LEN == 16 && MAX_PLAINTEXT == 3993);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    // RFC 8291 Appendix A.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const NONCE: &str = "4h_95klXJ5E_qnoN";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml\
                        mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT\
                        pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn key_derivation_matches_rfc_8291_appendix_a() {
        let keys = derive_content_keys(
            &b64(ECDH_SECRET),
            &b64(UA_PUBLIC),
            &b64(AS_PUBLIC),
            &b64(AUTH),
            &b64(SALT),
        )
        .unwrap();
        assert_eq!(keys.cek.to_vec(), b64(CEK));
        assert_eq!(keys.nonce.to_vec(), b64(NONCE));
    }

    #[test]
    fn sealed_body_matches_rfc_8291_appendix_a() {
        let keys = derive_content_keys(
            &b64(ECDH_SECRET),
            &b64(UA_PUBLIC),
            &b64(AS_PUBLIC),
            &b64(AUTH),
            &b64(SALT),
        )
        .unwrap();
        let salt: [u8; 16] = b64(SALT).try_into().unwrap();
        let body = seal_record(&keys, &salt, &b64(AS_PUBLIC), PLAINTEXT).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), BODY);
    }

    #[test]
    fn the_rfc_ecdh_secret_is_what_p256_computes() {
        // Ties the vector's ECDH secret to its keys with an independent implementation.
        let as_secret = p256::SecretKey::from_slice(&b64(AS_PRIVATE)).unwrap();
        let ua_public = p256::PublicKey::from_sec1_bytes(&b64(UA_PUBLIC)).unwrap();
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let shared = (ua_public.to_projective() * *as_secret.to_nonzero_scalar()).to_affine();
        let x = shared.to_encoded_point(false).x().unwrap().to_vec();
        assert_eq!(x, b64(ECDH_SECRET));
    }

    fn device() -> (ece::crypto::EcKeyComponents, [u8; 16]) {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        (pair.raw_components().unwrap(), auth)
    }

    #[test]
    fn encrypted_bodies_decrypt_with_the_ece_crate() {
        let (components, auth) = device();
        for len in [0usize, 1, 41, 1000, MAX_PLAINTEXT] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let body = encrypt(components.public_key(), &auth, &plaintext).unwrap();
            assert!(body.len() <= RECORD_SIZE as usize);
            assert_eq!(body.len(), HEADER_LEN + len + 1 + TAG_LEN);
            assert_eq!(ece::decrypt(&components, &auth, &body).unwrap(), plaintext);
        }
    }

    #[test]
    fn each_message_uses_a_fresh_salt_and_key() {
        let (components, auth) = device();
        let first = encrypt(components.public_key(), &auth, b"same").unwrap();
        let second = encrypt(components.public_key(), &auth, b"same").unwrap();
        assert_ne!(first[..HEADER_LEN], second[..HEADER_LEN]);
    }

    #[test]
    fn a_full_record_is_exactly_4096_bytes_and_one_more_byte_is_refused() {
        let (components, auth) = device();
        let body = encrypt(components.public_key(), &auth, &[b'x'; MAX_PLAINTEXT]).unwrap();
        assert_eq!(body.len(), 4096);
        assert_eq!(
            encrypt(components.public_key(), &auth, &[b'x'; MAX_PLAINTEXT + 1]),
            Err(EceError::PlaintextTooLarge {
                len: MAX_PLAINTEXT + 1,
                max: MAX_PLAINTEXT
            })
        );
    }

    #[test]
    fn validate_keys_accepts_a_real_subscription() {
        let (components, auth) = device();
        assert_eq!(validate_keys(components.public_key(), &auth), Ok(()));
        assert_eq!(validate_keys(&b64(UA_PUBLIC), &b64(AUTH)), Ok(()));
    }

    #[test]
    fn validate_keys_refuses_points_off_the_curve_and_bad_lengths() {
        let good = b64(UA_PUBLIC);
        let auth = b64(AUTH);
        let mut off_curve = good.clone();
        off_curve[64] ^= 1;
        assert_eq!(
            validate_keys(&off_curve, &auth),
            Err(EceError::InvalidPublicKey)
        );
        let mut compressed = good[..33].to_vec();
        compressed[0] = 0x02;
        assert_eq!(
            validate_keys(&compressed, &auth),
            Err(EceError::InvalidPublicKey)
        );
        let mut wrong_tag = good.clone();
        wrong_tag[0] = 0x06;
        assert_eq!(
            validate_keys(&wrong_tag, &auth),
            Err(EceError::InvalidPublicKey)
        );
        assert_eq!(
            validate_keys(&[0u8; 65], &auth),
            Err(EceError::InvalidPublicKey)
        );
        assert_eq!(
            validate_keys(&good, &auth[..15]),
            Err(EceError::InvalidAuthSecret(15))
        );
        assert_eq!(
            validate_keys(&good, &[0u8; 17]),
            Err(EceError::InvalidAuthSecret(17))
        );
        assert_eq!(
            encrypt(&off_curve, &auth, b"x"),
            Err(EceError::InvalidPublicKey)
        );
    }

    /// Prints the cost of one encryption; run with
    /// `cargo test --release --lib notify::ece -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_encrypt_cost() {
        let (components, auth) = device();
        let plaintext = vec![b'a'; 600];
        let rounds = 2000u32;
        let started = std::time::SystemTime::now();
        for _ in 0..rounds {
            std::hint::black_box(encrypt(components.public_key(), &auth, &plaintext).unwrap());
        }
        let elapsed = started.elapsed().unwrap();
        println!("encrypt(600 bytes): {:?} per call", elapsed / rounds);
    }
}
