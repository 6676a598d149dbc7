//! Blocks shared by several kinds: S3-style CORS and lifecycle rules (AWS S3 and Spaces).

use crate::desired::schema::{Cx, Set};
use crate::desired::source::Span;
use crate::desired::values::CorsOrigin;
use crate::{block, string_enum};

string_enum! {
    /// An HTTP method a CORS rule allows.
    pub enum HttpMethod {
        /// GET.
        Get = "GET",
        /// PUT.
        Put = "PUT",
        /// POST.
        Post = "POST",
        /// DELETE.
        Delete = "DELETE",
        /// HEAD.
        Head = "HEAD",
    }
}

block! {
    /// One CORS rule of a bucket.
    pub struct CorsRule {
        /// Origins allowed to make cross-origin requests (`*` or `https://host`).
        allowed_origins: Set<CorsOrigin> => update,
        /// HTTP methods allowed (order does not matter).
        allowed_methods: Set<HttpMethod> => update,
        /// Request headers allowed (`*` for any; order does not matter).
        allowed_headers: Set<String> => update,
        /// Response headers exposed to the browser (order does not matter).
        expose_headers: Set<String> => update,
        /// How long a browser may cache the preflight answer, in seconds.
        max_age_seconds: Option<u32> => update [0, 86400],
    }
    check = check_cors;
}

fn check_cors(rule: &CorsRule, span: Span, cx: &mut Cx<'_>) {
    if rule.allowed_origins.is_empty() {
        cx.error(
            span,
            "a CORS rule needs at least one entry in `allowed_origins`",
        );
    }
    if rule.allowed_methods.is_empty() {
        cx.error(
            span,
            "a CORS rule needs at least one entry in `allowed_methods`",
        );
    }
}

block! {
    /// One lifecycle rule of a bucket (the subset both S3 and Spaces support).
    pub struct LifecycleRule {
        /// Rule identifier, unique within the bucket.
        id: String => update,
        /// Whether the rule is active.
        enabled: bool = true => update,
        /// Object key prefix the rule applies to (empty: the whole bucket).
        prefix: String = "" => update,
        /// Delete current objects this many days after creation.
        expiration_days: Option<u32> => update [1, 36500],
        /// Delete non-current versions this many days after they stop being current.
        noncurrent_version_expiration_days: Option<u32> => update [1, 36500],
        /// Abort incomplete multipart uploads after this many days.
        abort_incomplete_multipart_upload_days: Option<u32> => update [1, 36500],
    }
    check = check_lifecycle;
}

fn check_lifecycle(rule: &LifecycleRule, span: Span, cx: &mut Cx<'_>) {
    if rule.id.is_empty() || rule.id.len() > 255 {
        cx.error(span, "a lifecycle rule `id` must be 1 to 255 characters");
    }
    if rule.expiration_days.is_none()
        && rule.noncurrent_version_expiration_days.is_none()
        && rule.abort_incomplete_multipart_upload_days.is_none()
    {
        cx.error(
            span,
            format!("lifecycle rule \"{}\" has no action", rule.id),
        )
        .set_help(
            "set at least one of `expiration_days`, `noncurrent_version_expiration_days`, \
             `abort_incomplete_multipart_upload_days`",
        );
    }
}

/// Checks that rule ids are unique within one bucket.
pub fn check_unique_rule_ids(rules: &[LifecycleRule], span: Span, cx: &mut Cx<'_>) {
    let mut seen = std::collections::BTreeSet::new();
    for r in rules {
        if !seen.insert(r.id.as_str()) {
            cx.error(
                span,
                format!("lifecycle rule id \"{}\" is used twice", r.id),
            );
        }
    }
}
