//! AWS kinds: S3, SNS, SES v2, the IAM user behind SES SMTP, Secrets Manager.

use std::collections::BTreeMap;

use super::common::{CorsRule, LifecycleRule, check_unique_rule_ids};
use super::{Export, KindInfo, KindRules, Replacement, exact, list, plain, secret};
use crate::desired::refs::contains_ref;
use crate::desired::schema::{Cx, Set};
use crate::desired::source::Span;
use crate::desired::values::{
    AwsName, AwsRegion, BucketName, DnsName, Duration, IamName, IamPath, SecretName, SecretSource,
    StoredSecret,
};
use crate::{block, string_enum};

string_enum! {
    /// Default encryption algorithm of a bucket.
    pub enum SseAlgorithm {
        /// S3-managed keys.
        Aes256 = "AES256",
        /// A KMS key.
        AwsKms = "aws:kms",
    }
}

block! {
    /// Default encryption of new objects.
    pub struct BucketEncryption {
        /// Algorithm.
        algorithm: SseAlgorithm = "AES256" => update,
        /// KMS key id or ARN (with `aws:kms`; the AWS-managed key when left out).
        kms_key_id: Option<String> => update,
        /// Use an S3 bucket key to cut KMS calls.
        bucket_key_enabled: bool = false => update,
    }
    check = check_encryption;
}

fn check_encryption(e: &BucketEncryption, span: Span, cx: &mut Cx<'_>) {
    if e.kms_key_id.is_some() && e.algorithm != SseAlgorithm::AwsKms {
        cx.error(span, "`kms_key_id` needs `algorithm = \"aws:kms\"`");
    }
}

block! {
    /// The bucket's public access block; every switch defaults to on.
    pub struct PublicAccessBlock {
        /// Reject requests that add public ACLs.
        block_public_acls: bool = true => update,
        /// Ignore public ACLs.
        ignore_public_acls: bool = true => update,
        /// Reject public bucket policies.
        block_public_policy: bool = true => update,
        /// Restrict access to buckets with public policies.
        restrict_public_buckets: bool = true => update,
    }
}

block! {
    /// An S3 bucket.
    pub struct S3Bucket {
        /// Bucket name, globally unique.
        bucket: BucketName => replace,
        /// Region; the `[settings.aws] region` when left out.
        region: Option<AwsRegion> => replace,
        /// Keep every version of every object (suspended when turned off).
        versioning: bool = false => update,
        /// Default encryption.
        encryption: Option<BucketEncryption> => update,
        /// Public access block.
        public_access_block: Option<PublicAccessBlock> => update,
        /// Lifecycle rules.
        lifecycle_rules: Vec<LifecycleRule> => update,
        /// CORS rules.
        cors_rules: Vec<CorsRule> => update,
        /// Tags.
        tags: BTreeMap<String, String> => update,
        /// Delete the bucket even when it still holds objects.
        force_destroy: bool = false => local,
    }
    check = check_s3_bucket;
}

fn check_s3_bucket(b: &S3Bucket, span: Span, cx: &mut Cx<'_>) {
    cx.nested("lifecycle_rules", |cx| {
        check_unique_rule_ids(&b.lifecycle_rules, span, cx)
    });
    check_tags(&b.tags, span, cx);
}

/// AWS tag limits: 50 tags, keys up to 128 and values up to 256 characters, no `aws:` prefix.
pub fn check_tags(tags: &BTreeMap<String, String>, span: Span, cx: &mut Cx<'_>) {
    cx.nested("tags", |cx| {
        if tags.len() > 50 {
            cx.error(span, format!("{} tags: AWS allows at most 50", tags.len()));
        }
        for (k, v) in tags {
            if k.is_empty() || k.chars().count() > 128 || k.to_ascii_lowercase().starts_with("aws:")
            {
                cx.error(
                    span,
                    format!(
                        "tag key \"{k}\" must be 1 to 128 characters and not start with `aws:`"
                    ),
                );
            }
            if v.chars().count() > 256 {
                cx.error(
                    span,
                    format!("the value of tag \"{k}\" is longer than 256 characters"),
                );
            }
        }
    });
}

impl KindInfo for S3Bucket {
    const DOC: &'static str = "An S3 bucket with its versioning, encryption, public access block, lifecycle, CORS and tags. The ledger's own bucket is described this way.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the bucket name"),
        plain("arn", "`arn:aws:s3:::<name>`"),
        plain("region", "the bucket's region"),
        plain("bucket_domain_name", "`<name>.s3.<region>.amazonaws.com`"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("bucket")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("s3 bucket {}", self.bucket.as_str()))
    }
}

block! {
    /// An SNS topic.
    pub struct SnsTopic {
        /// Topic name (FIFO topics end in `.fifo`).
        name: AwsName => replace,
        /// Display name for SMS subscriptions.
        display_name: Option<String> => update,
        /// KMS key for server-side encryption.
        kms_master_key_id: Option<String> => update,
        /// Tags.
        tags: BTreeMap<String, String> => update,
    }
    check = check_sns;
}

fn check_sns(t: &SnsTopic, span: Span, cx: &mut Cx<'_>) {
    check_tags(&t.tags, span, cx);
}

impl KindInfo for SnsTopic {
    const DOC: &'static str =
        "An SNS topic, for example the destination of SES bounce and complaint events.";
    const EXPORTS: &'static [Export] = &[plain("arn", "the topic ARN"), plain("name", "the name")];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("sns topic {}", self.name.as_str()))
    }
}

string_enum! {
    /// Easy DKIM key length.
    pub enum DkimKeyLength {
        /// 1024-bit RSA.
        Rsa1024 = "RSA_1024_BIT",
        /// 2048-bit RSA.
        Rsa2048 = "RSA_2048_BIT",
    }
}

string_enum! {
    /// What SES does when the MAIL FROM domain's MX record is missing.
    pub enum MxFailure {
        /// Fall back to `amazonses.com`.
        UseDefault = "USE_DEFAULT_VALUE",
        /// Reject the message.
        Reject = "REJECT_MESSAGE",
    }
}

block! {
    /// An SES v2 domain identity with Easy DKIM.
    pub struct SesDomainIdentity {
        /// The domain mail is sent from.
        domain: DnsName => replace,
        /// Easy DKIM key length.
        dkim_key_length: DkimKeyLength = "RSA_2048_BIT" => update,
        /// Sign outgoing mail with DKIM.
        dkim_signing_enabled: bool = true => update,
        /// Custom MAIL FROM domain, a subdomain of `domain` (e.g. `bounce.example.com`).
        mail_from_domain: Option<DnsName> => update,
        /// What to do when the MAIL FROM MX record is missing.
        behavior_on_mx_failure: MxFailure = "USE_DEFAULT_VALUE" => update,
        /// Default configuration set, usually a reference to its `name`.
        configuration_set: Option<String> => update,
        /// Tags.
        tags: BTreeMap<String, String> => update,
    }
    check = check_ses_identity;
}

fn check_ses_identity(i: &SesDomainIdentity, span: Span, cx: &mut Cx<'_>) {
    if let Some(from) = &i.mail_from_domain {
        let literal = !contains_ref(from.as_str()) && !contains_ref(i.domain.as_str());
        if literal && !from.as_str().ends_with(&format!(".{}", i.domain.as_str())) {
            cx.nested("mail_from_domain", |cx| {
                cx.error(
                    span,
                    format!(
                        "\"{}\" must be a subdomain of \"{}\"",
                        from.as_str(),
                        i.domain.as_str()
                    ),
                )
                .set_help(format!("for example \"bounce.{}\"", i.domain.as_str()));
            });
        }
    }
    check_tags(&i.tags, span, cx);
}

impl KindInfo for SesDomainIdentity {
    const DOC: &'static str = "An SES v2 domain identity with Easy DKIM. Its DKIM tokens are exported so the DNS records SES asks for can be built by reference; verification in progress is reported as status, not as drift.";
    const EXPORTS: &'static [Export] = &[
        plain("arn", "the identity ARN"),
        plain("domain", "the domain"),
        list(
            "dkim_tokens",
            "the Easy DKIM tokens (normally three): record names are `<token>._domainkey`",
        ),
        list(
            "dkim_cname_targets",
            "CNAME targets matching `dkim_tokens`: `<token>.<signing hosted zone>`",
        ),
        plain(
            "dkim_signing_hosted_zone",
            "the zone DKIM CNAMEs point into (`dkim.amazonses.com` when SES names none)",
        ),
        plain(
            "mail_from_mx",
            "`feedback-smtp.<region>.amazonses.com`, the MX host of the MAIL FROM domain",
        ),
        plain(
            "verification_status",
            "PENDING, SUCCESS, FAILED, TEMPORARY_FAILURE or NOT_STARTED",
        ),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("domain")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("ses identity {}", self.domain.as_str()))
    }
}

string_enum! {
    /// TLS policy of a configuration set.
    pub enum TlsPolicy {
        /// Deliver only over TLS.
        Require = "REQUIRE",
        /// Use TLS when the receiver offers it.
        Optional = "OPTIONAL",
    }
}

string_enum! {
    /// Reason an address goes on the suppression list.
    pub enum SuppressedReason {
        /// Hard bounces.
        Bounce = "BOUNCE",
        /// Complaints.
        Complaint = "COMPLAINT",
    }
}

string_enum! {
    /// An SES event type.
    pub enum SesEventType {
        /// Sent.
        Send = "SEND",
        /// Rejected by SES.
        Reject = "REJECT",
        /// Bounced.
        Bounce = "BOUNCE",
        /// Complaint.
        Complaint = "COMPLAINT",
        /// Delivered.
        Delivery = "DELIVERY",
        /// Opened.
        Open = "OPEN",
        /// Link clicked.
        Click = "CLICK",
        /// Template rendering failed.
        RenderingFailure = "RENDERING_FAILURE",
        /// Delivery delayed.
        DeliveryDelay = "DELIVERY_DELAY",
        /// Subscription preference changed.
        Subscription = "SUBSCRIPTION",
    }
}

block! {
    /// Where a configuration set publishes events.
    pub struct EventDestination {
        /// Whether events are published.
        enabled: bool = true => update,
        /// Event types to publish (order does not matter).
        matching_event_types: Set<SesEventType> => update,
        /// SNS topic ARN, usually `${aws.sns_topic.NAME.arn}`.
        sns_topic_arn: String => update,
    }
    check = check_event_destination;
}

fn check_event_destination(d: &EventDestination, span: Span, cx: &mut Cx<'_>) {
    if d.matching_event_types.is_empty() {
        cx.nested("matching_event_types", |cx| {
            cx.error(span, "name at least one event type")
                .set_help("for bounces and complaints: [\"BOUNCE\", \"COMPLAINT\"]");
        });
    }
    if !contains_ref(&d.sns_topic_arn) && !d.sns_topic_arn.starts_with("arn:") {
        cx.nested("sns_topic_arn", |cx| {
            cx.error(span, format!("\"{}\" is not an ARN", d.sns_topic_arn))
                .set_help("reference the topic: \"${aws.sns_topic.NAME.arn}\"");
        });
    }
}

block! {
    /// An SES v2 configuration set.
    pub struct SesConfigurationSet {
        /// Name: letters, digits, `_` and `-`, at most 64.
        name: AwsName => replace,
        /// Whether sending through the set is enabled.
        sending_enabled: bool = true => update,
        /// Publish reputation metrics to CloudWatch.
        reputation_metrics_enabled: bool = false => update,
        /// TLS policy for delivery.
        tls_policy: TlsPolicy = "OPTIONAL" => update,
        /// Reasons that put an address on the suppression list (order does not matter).
        /// Unset: the set follows the account-level suppression list and provisioner sends
        /// nothing; `[]` turns suppression off for the set.
        suppressed_reasons: Option<Set<SuppressedReason>> => update,
        /// Event destinations by name.
        event_destinations: BTreeMap<String, EventDestination> => update,
        /// Tags.
        tags: BTreeMap<String, String> => update,
    }
    check = check_configuration_set;
}

fn check_configuration_set(c: &SesConfigurationSet, span: Span, cx: &mut Cx<'_>) {
    if c.name.as_str().len() > 64 {
        cx.nested("name", |cx| {
            cx.error(span, "is longer than 64 characters");
        });
    }
    for name in c.event_destinations.keys() {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            cx.nested("event_destinations", |cx| {
                cx.error(span, format!("event destination name \"{name}\" must be 1 to 64 letters, digits, `_` or `-`"));
            });
        }
    }
    check_tags(&c.tags, span, cx);
}

impl KindInfo for SesConfigurationSet {
    const DOC: &'static str = "An SES v2 configuration set with its sending, reputation and suppression options and its event destinations.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the name"),
        plain("arn", "the configuration set ARN"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("ses configuration set {}", self.name.as_str()))
    }
}

block! {
    /// An IAM user whose access key is turned into SES SMTP credentials.
    pub struct IamSmtpUser {
        /// IAM user name.
        name: IamName => replace,
        /// IAM path.
        path: IamPath = "/" => replace,
        /// SES region the SMTP password is derived for; `[settings.aws] region` when left out.
        /// Changing it makes a new access key (the password is per region).
        region: Option<AwsRegion> => replace,
        /// Name of the inline policy that allows `ses:SendRawEmail`.
        policy_name: IamName = "ses-send-raw-email" => update,
        /// Identity ARNs the user may send as; any identity when empty.
        allowed_identities: Vec<String> => update,
        /// Rotate the access key after this long: new key, consumers updated, old key deleted.
        rotate_after: Option<Duration> => local,
        /// Tags.
        tags: BTreeMap<String, String> => update,
    }
    check = check_smtp_user;
}

fn check_smtp_user(u: &IamSmtpUser, span: Span, cx: &mut Cx<'_>) {
    check_tags(&u.tags, span, cx);
    check_rotation(&u.rotate_after, span, cx);
}

fn check_rotation(r: &Option<Duration>, span: Span, cx: &mut Cx<'_>) {
    if r.as_ref().is_some_and(|d| d.seconds() < 86_400) {
        cx.nested("rotate_after", |cx| {
            cx.error(span, "rotating more often than once a day is not supported");
        });
    }
}

impl KindInfo for IamSmtpUser {
    const DOC: &'static str = "An IAM user with an inline policy allowing `ses:SendRawEmail` and one access key, exported as SES SMTP credentials. The secret access key lives only in memory and in the consumers, never in the ledger.";
    const EXPORTS: &'static [Export] = &[
        plain("arn", "the user ARN"),
        plain("name", "the user name"),
        plain("smtp_username", "the SMTP user name (the access key id)"),
        secret(
            "smtp_password",
            "the SES SMTP password derived for `region`",
        ),
        plain("smtp_endpoint", "`email-smtp.<region>.amazonaws.com`"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // Kept under its name, it is replaced by rotating its access key, the new key first
        // (docs/aws.md); only a new name, path or region makes a new user, the old one first.
        // A new key in place (the new one first, the old one retired once every consumer
        // has the new password); a new name or path is a new user.
        replacement: Replacement::InPlaceUnless(&["name", "path"]),
        unrecoverable: &["smtp_password"],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("iam user {}", self.name.as_str()))
    }
}

block! {
    /// A Secrets Manager secret.
    pub struct SecretsmanagerSecret {
        /// Secret name.
        name: SecretName => replace,
        /// Description.
        description: String = "" => update,
        /// KMS key; the account's `aws/secretsmanager` key when left out.
        kms_key_id: Option<String> => update,
        /// The value: env, file, a reference to a secret output, or `{ generate = { length = 32 } }`.
        value: StoredSecret => update,
        /// Days a deleted secret can still be restored (7 to 30).
        recovery_window_days: u32 = 7 => local [7, 30],
        /// Delete at once, without a recovery window.
        force_delete: bool = false => local,
        /// Regenerate a generated value after this long.
        rotate_after: Option<Duration> => local,
        /// Tags.
        tags: BTreeMap<String, String> => update,
    }
    check = check_secret;
}

fn check_secret(s: &SecretsmanagerSecret, span: Span, cx: &mut Cx<'_>) {
    if s.rotate_after.is_some() && !matches!(s.value.0, SecretSource::Generate(_)) {
        cx.nested("rotate_after", |cx| {
            cx.error(span, "`rotate_after` only applies to generated values")
                .set_help("rotate a supplied value by changing it where it comes from");
        });
    }
    check_rotation(&s.rotate_after, span, cx);
    check_tags(&s.tags, span, cx);
    if s.description.chars().count() > 2048 {
        cx.nested("description", |cx| {
            cx.error(span, "is longer than 2048 characters");
        });
    }
}

impl KindInfo for SecretsmanagerSecret {
    const DOC: &'static str = "A Secrets Manager secret, for example one the in-cluster External Secrets Operator reads. A generated value is created once and kept only in the secret; value drift is found by comparing keyed fingerprints.";
    const EXPORTS: &'static [Export] = &[
        plain("arn", "the secret ARN"),
        plain("name", "the name"),
        secret("value", "the current value"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // A generated value is renewed in place; a new name is a new secret (the old one
        // first: names are unique in the account).
        replacement: Replacement::InPlaceUnless(&["name"]),
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("secret {}", self.name.as_str()))
    }
}
