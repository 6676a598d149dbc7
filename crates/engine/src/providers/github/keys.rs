//! Deploy-key pairs: ed25519, generated with the operating system's CSPRNG, written in the
//! OpenSSH formats (`ssh-ed25519 AAAA… comment` and an unencrypted `openssh-key-v1` private
//! key) that GitHub and Flux read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_box::aead::OsRng;
use crypto_box::aead::rand_core::RngCore;
use ed25519_dalek::SigningKey;

use crate::providers::SecretValue;

/// A fresh key pair.
pub struct KeyPair {
    /// `ssh-ed25519 AAAA… comment`.
    pub public: String,
    /// The OpenSSH private key (PEM-like armour), kept only in memory and in its consumer.
    pub private: SecretValue,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("private", &self.private)
            .finish()
    }
}

/// Generates an ed25519 key pair with `comment`.
pub fn generate(comment: &str) -> Result<KeyPair, String> {
    let mut seed = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| format!("the system's random source failed: {e}"))?;
    let pair = from_seed(&seed, comment, check_int()?);
    seed.fill(0);
    Ok(pair)
}

fn check_int() -> Result<u32, String> {
    let mut b = [0u8; 4];
    OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(u32::from_be_bytes(b))
}

/// The key pair for a seed (deterministic; `generate` is the one to use).
pub fn from_seed(seed: &[u8; 32], comment: &str, check: u32) -> KeyPair {
    let signing = SigningKey::from_bytes(seed);
    let public = signing.verifying_key().to_bytes();
    let mut blob = Vec::new();
    put_str(&mut blob, b"ssh-ed25519");
    put_str(&mut blob, &public);

    // The private section: two equal check words, the key, the comment, then padding
    // 1, 2, 3, … to the cipher's block size (8 for "none").
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_str(&mut private, b"ssh-ed25519");
    put_str(&mut private, &public);
    let mut secret = Vec::with_capacity(64);
    secret.extend_from_slice(seed);
    secret.extend_from_slice(&public);
    put_str(&mut private, &secret);
    secret.fill(0);
    put_str(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut whole = Vec::new();
    whole.extend_from_slice(b"openssh-key-v1\0");
    put_str(&mut whole, b"none");
    put_str(&mut whole, b"none");
    put_str(&mut whole, b"");
    whole.extend_from_slice(&1u32.to_be_bytes());
    put_str(&mut whole, &blob);
    put_str(&mut whole, &private);
    private.fill(0);

    let encoded = B64.encode(&whole);
    whole.fill(0);
    let mut armoured = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(70) {
        armoured.push_str(std::str::from_utf8(line).unwrap_or_default());
        armoured.push('\n');
    }
    armoured.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    let public_line = if comment.is_empty() {
        format!("ssh-ed25519 {}", B64.encode(&blob))
    } else {
        format!("ssh-ed25519 {} {comment}", B64.encode(&blob))
    };
    KeyPair {
        public: public_line,
        private: SecretValue::new(armoured.into_bytes()),
    }
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The `ssh-ed25519 AAAA…` part of a public key line (what GitHub stores and returns).
pub fn bare(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, test 1: the seed's public key.
    #[test]
    fn the_public_key_matches_rfc_8032() {
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .unwrap();
        let pair = from_seed(&seed, "flux", 7);
        let blob = B64
            .decode(pair.public.split_whitespace().nth(1).unwrap())
            .unwrap();
        assert_eq!(
            &blob[blob.len() - 32..],
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").as_slice()
        );
        assert!(pair.public.ends_with(" flux"));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }

    #[test]
    fn ssh_keygen_reads_the_private_key_back_when_installed() {
        let Ok(out) = std::process::Command::new("ssh-keygen").arg("-?").output() else {
            eprintln!("ssh-keygen is not installed: the format is checked by the RFC vector only");
            return;
        };
        drop(out);
        let pair = generate("provisioner-test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, pair.private.expose()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let derived = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            derived.status.success(),
            "{}",
            String::from_utf8_lossy(&derived.stderr)
        );
        let derived = String::from_utf8(derived.stdout).unwrap();
        assert_eq!(bare(derived.trim()), bare(&pair.public));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
