//! The SES SMTP password for an IAM secret access key (version 4 of AWS's algorithm, per
//! region): `base64(0x04 ‖ HMAC chain("AWS4" + key, "11111111", region, "ses",
//! "aws4_request", "SendRawEmail"))`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::providers::SecretValue;

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The SMTP password for `secret_access_key` in `region`.
pub fn password(secret_access_key: &SecretValue, region: &str) -> SecretValue {
    let mut key = b"AWS4".to_vec();
    key.extend_from_slice(secret_access_key.expose());
    let mut signature = hmac(&key, b"11111111");
    key.iter_mut().for_each(|b| *b = 0);
    for part in [region.as_bytes(), b"ses", b"aws4_request", b"SendRawEmail"] {
        signature = hmac(&signature, part);
    }
    let mut raw = vec![0x04];
    raw.extend_from_slice(&signature);
    SecretValue::new(B64.encode(raw).into_bytes())
}

/// The SMTP endpoint of a region.
pub fn endpoint(region: &str) -> String {
    format!("email-smtp.{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of ../shared/reference/cloud-apis.md D.1 (AWS's documented example key).
    #[test]
    fn matches_the_reference_vectors() {
        let key = SecretValue::new(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_vec());
        assert_eq!(
            password(&key, "us-east-1").expose(),
            b"BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9"
        );
        assert_eq!(
            password(&key, "eu-west-1").expose(),
            b"BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk"
        );
        assert_eq!(endpoint("eu-west-1"), "email-smtp.eu-west-1.amazonaws.com");
    }
}
