//! Loading the fingerprint key ([`FingerprintKey`]) from where it is kept: the environment
//! (`PROVISIONER_FINGERPRINT_KEY`) or an AWS Secrets Manager secret. The key and the HMAC
//! rule live in `provisioner_core::ledger::fingerprint`; this is the part that needs the
//! AWS SDK.

use crate::ledger::fingerprint::FingerprintKey;

/// The key kept in an AWS Secrets Manager secret (its string, or its binary value).
pub async fn from_secrets_manager(
    config: &aws_config::SdkConfig,
    name: &str,
) -> Result<FingerprintKey, String> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception());
            format!(
                "reading the fingerprint key from Secrets Manager secret `{name}`: {}{}",
                crate::errors::chain(&e),
                if missing {
                    "; `provisioner init` creates it (32 random bytes, never printed)"
                } else {
                    ""
                }
            )
        })?;
    let bytes = match (out.secret_string(), out.secret_binary()) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(b)) => b.as_ref().to_vec(),
        (None, None) => return Err(format!("Secrets Manager secret `{name}` has no value")),
    };
    FingerprintKey::new(bytes).map_err(|e| format!("Secrets Manager secret `{name}`: {e}"))
}

/// The key from `PROVISIONER_FINGERPRINT_KEY`, else from the Secrets Manager secret the
/// settings name, else none.
pub async fn load(secret_name: Option<&str>) -> Result<Option<FingerprintKey>, String> {
    if let Some(key) = FingerprintKey::from_env()? {
        return Ok(Some(key));
    }
    let Some(name) = secret_name else {
        return Ok(None);
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    from_secrets_manager(&config, name).await.map(Some)
}
