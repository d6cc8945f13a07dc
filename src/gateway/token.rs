//! The gateway token: taken from the environment or minted as a short-lived HS256 JWT.
//! A [`Secret`] never prints its value (`Debug` shows `***`, there is no `Display`), no check
//! puts it into evidence, and making one registers it with [`crate::outside::register_secret`],
//! so outside text that echoes it is redacted when it arrives, before it is cut or printed.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Lifetime of a minted token: long enough for one verify run, short if it leaks.
pub const MINTED_TTL: Duration = Duration::from_secs(300);

/// A secret string. Read it with [`Secret::expose`] only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret, registered for redaction everywhere (see [`crate::outside`]).
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        crate::outside::register_secret(&value);
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HS256 JWT for `claims` signed with `key`.
pub fn sign_hs256(key: &[u8], claims_json: &str) -> Secret {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims_json);
    let input = format!("{header}.{body}");
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Secret::new(format!("{input}.{sig}"))
}

fn claims(ttl: Duration) -> String {
    let iat = now_secs();
    serde_json::json!({
        "sub": "bosar-deploy-verify",
        "iat": iat,
        "exp": iat + ttl.as_secs().max(1),
    })
    .to_string()
}

/// A token the gateway should accept: signed with its secret, expiring in [`MINTED_TTL`].
pub fn mint(secret: &Secret) -> Secret {
    sign_hs256(secret.expose().as_bytes(), &claims(MINTED_TTL))
}

/// A token signed with `secret` living `ttl` (at least [`MINTED_TTL`]).
pub fn mint_for(secret: &Secret, ttl: Duration) -> Secret {
    sign_hs256(secret.expose().as_bytes(), &claims(ttl.max(MINTED_TTL)))
}

/// A well-formed token signed with a random key: the gateway must refuse it.
pub fn forge() -> Secret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    sign_hs256(&key, &claims(MINTED_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_reference() {
        // jwt.io's HS256 example, key "your-256-bit-secret".
        let claims = r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#;
        let t = sign_hs256(b"your-256-bit-secret", claims);
        assert_eq!(
            t.expose(),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
        assert_eq!(format!("{t:?}"), "***");
    }

    #[test]
    fn minted_token_expires_soon() {
        let t = mint(&Secret::new("s"));
        let body = t.expose().split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(ttl, MINTED_TTL.as_secs());
        assert_ne!(forge().expose(), forge().expose());
    }
}
