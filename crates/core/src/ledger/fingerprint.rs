//! Keyed fingerprints of secret values: HMAC-SHA256 under a key that is never in the ledger,
//! so the ledger can say "this secret changed" while a reader of it can neither recover the
//! value nor test guesses against it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::desired::Address;

/// The environment variable holding the key.
pub const KEY_ENV: &str = "PROVISIONER_FINGERPRINT_KEY";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The fingerprint key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct FingerprintKey(Vec<u8>);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(redacted)")
    }
}

impl FingerprintKey {
    /// A key from its bytes (at least [`MIN_KEY_BYTES`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{KEY_ENV} is {} bytes long; use at least {MIN_KEY_BYTES} random bytes (for example `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        Ok(FingerprintKey(bytes))
    }

    /// The key from `PROVISIONER_FINGERPRINT_KEY`, if set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var_os(KEY_ENV) {
            None => Ok(None),
            Some(v) => FingerprintKey::new(v.into_encoded_bytes()).map(Some),
        }
    }

    /// The fingerprint of one secret field's value: `hmac-sha256:<hex>`. The address and
    /// field are bound in, so equal values in two places have different fingerprints.
    pub fn fingerprint(&self, address: &Address, field: &str, value: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in [
            address.as_str().as_bytes(),
            b"\0",
            field.as_bytes(),
            b"\0",
            value,
        ] {
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(12 + 64);
        out.push_str("hmac-sha256:");
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_key_place_and_value_and_hide_the_value() {
        let k1 = FingerprintKey::new(b"0123456789abcdef0123".to_vec()).unwrap();
        let k2 = FingerprintKey::new(b"fedcba98765432100123".to_vec()).unwrap();
        let a = Address::new("github", "actions_secret", "x");
        let b = Address::new("github", "actions_secret", "y");
        let f = k1.fingerprint(&a, "value", b"canary-secret");
        assert!(f.starts_with("hmac-sha256:") && f.len() == 12 + 64);
        assert!(!f.contains("canary"));
        assert_eq!(f, k1.fingerprint(&a, "value", b"canary-secret"));
        assert_ne!(f, k2.fingerprint(&a, "value", b"canary-secret"));
        assert_ne!(f, k1.fingerprint(&b, "value", b"canary-secret"));
        assert_ne!(f, k1.fingerprint(&a, "value", b"canary-secreT"));
        assert!(format!("{k1:?}").contains("redacted"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(FingerprintKey::new(b"short".to_vec()).is_err());
    }

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2 computes HMAC-SHA256("Jefe", "what do ya want for nothing?");
        // check the primitive directly (the key is below our minimum on purpose).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
