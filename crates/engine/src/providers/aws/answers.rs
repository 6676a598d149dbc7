//! Every AWS answer is checked before it is believed: a 2xx answer to a read (`List*`,
//! `Get*`, `Describe*`) whose body is not well-formed for its service's protocol, or that
//! lacks the list the provider reads from it, fails the call. The SDK's deserialisers accept
//! an empty body and `{}` as an empty output for the JSON protocols, and stop reading XML at
//! the first unknown end (a truncated `ListBuckets` is a shorter list): believed, either
//! would plan creates of objects that exist. With the call failed, the kind is "not
//! observed" and nothing of it is planned.
//!
//! The check is one smithy interceptor, [`Answers`], added to every AWS client the
//! providers build (`AwsProvider::new`, and the Spaces client). It runs after the SDK has
//! read the body into memory (`read_after_deserialization`: the orchestrator reads a
//! non-streaming body before deserialising it, `aws-smithy-runtime` 1.9 `orchestrator.rs`
//! `try_attempt`); streaming bodies (`GetObject`) are not held in memory and not checked.
//! Its messages never quote the body.
//!
//! Protocols, from the botocore service models (`botocore/data/<service>/<version>/service-2.json`,
//! `metadata.protocol`): S3 `rest-xml`; IAM, SNS, STS `query` (XML answers whose root is
//! `<Operation>Response`, holding the model's `resultWrapper` `<Operation>Result`);
//! Secrets Manager `json`; SES v2 `rest-json` (JSON answers are objects).

use std::fmt;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// An AWS service the providers call, by protocol (botocore `metadata.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// S3 (and DigitalOcean Spaces, its S3 API): `rest-xml`.
    S3,
    /// IAM: `query`.
    Iam,
    /// SNS: `query`.
    Sns,
    /// STS: `query`.
    Sts,
    /// Secrets Manager: `json` (1.1).
    SecretsManager,
    /// SES v2: `rest-json`.
    SesV2,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Iam => "IAM",
            Service::Sns => "SNS",
            Service::Sts => "STS",
            Service::SecretsManager => "Secrets Manager",
            Service::SesV2 => "SES v2",
        }
    }

    fn query(self) -> bool {
        matches!(self, Service::Iam | Service::Sns | Service::Sts)
    }

    fn json(self) -> bool {
        matches!(self, Service::SecretsManager | Service::SesV2)
    }
}

/// The list each read operation the providers use must carry: the path of XML elements
/// from the root, or the JSON member (which must be an array). Member names from the
/// botocore models. IAM's and SES v2 `ListTagsForResource`'s members are `required` there;
/// the others are not marked required, but the services send them even when empty (the API
/// references' response syntax shows no answer without them, and moto and the simulators
/// send them too), and an answer without them is the only way an absent list could be
/// believed as an empty one. `ListObjectVersions` lists are flattened (absent when empty),
/// so only its root is required. SNS `ListTopics`: the `resultWrapper`.
const LISTS: &[(Service, &str, &[&str])] = &[
    (
        Service::S3,
        "ListBuckets",
        &["ListAllMyBucketsResult", "Buckets"],
    ),
    (Service::S3, "ListObjectVersions", &["ListVersionsResult"]),
    (
        Service::Iam,
        "ListUsers",
        &["ListUsersResponse", "ListUsersResult", "Users"],
    ),
    (
        Service::Iam,
        "ListAccessKeys",
        &[
            "ListAccessKeysResponse",
            "ListAccessKeysResult",
            "AccessKeyMetadata",
        ],
    ),
    (
        Service::Iam,
        "ListUserPolicies",
        &[
            "ListUserPoliciesResponse",
            "ListUserPoliciesResult",
            "PolicyNames",
        ],
    ),
    (
        Service::Iam,
        "ListUserTags",
        &["ListUserTagsResponse", "ListUserTagsResult", "Tags"],
    ),
    (
        Service::Sns,
        "ListTopics",
        &["ListTopicsResponse", "ListTopicsResult"],
    ),
    (Service::SecretsManager, "ListSecrets", &["SecretList"]),
    (Service::SesV2, "ListEmailIdentities", &["EmailIdentities"]),
    (
        Service::SesV2,
        "ListConfigurationSets",
        &["ConfigurationSets"],
    ),
    (Service::SesV2, "ListTagsForResource", &["Tags"]),
];

/// Whether an operation only reads (its answer describes what exists).
fn reads(operation: &str) -> bool {
    ["List", "Get", "Describe"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// Checks the 2xx answer `body` of `operation` on `service`: `Err` says what is wrong with
/// it, without quoting it.
pub fn check(service: Service, operation: &str, body: &[u8]) -> Result<(), String> {
    if !reads(operation) {
        return Ok(());
    }
    let list = LISTS
        .iter()
        .find(|(s, op, _)| *s == service && *op == operation)
        .map(|(_, _, path)| *path);
    let not = |why: String| {
        Err(format!(
            "the answer to {} {operation} is not the operation's output: {why}",
            service.name()
        ))
    };
    if service.json() {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) else {
            return not("not a JSON object".into());
        };
        if let Some([member]) = list
            && !object.get(*member).is_some_and(serde_json::Value::is_array)
        {
            return not(format!("no {member} list"));
        }
        return Ok(());
    }
    let Some(paths) = xml_paths(body, list.map_or(1, <[&str]>::len)) else {
        return not("not well-formed XML".into());
    };
    let root = if service.query() {
        Some(format!("{operation}Response"))
    } else {
        None
    };
    if let Some(root) = root
        && paths.first().and_then(|p| p.first()) != Some(&root)
    {
        return not(format!("its root is not {root}"));
    }
    if let Some(path) = list
        && !paths
            .iter()
            .any(|p| p.iter().map(String::as_str).eq(path.iter().copied()))
    {
        return not(format!("no {}", path.join("/")));
    }
    Ok(())
}

/// The paths of the elements of a well-formed XML document, from its root down to `depth`
/// levels (the root's path first); `None` unless the document is well-formed: one root
/// element, every element closed by its own name, no text outside the root.
fn xml_paths(body: &[u8], depth: usize) -> Option<Vec<Vec<String>>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut stack: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    let mut roots = 0;
    for token in xmlparser::Tokenizer::from(text) {
        match token.ok()? {
            xmlparser::Token::ElementStart { local, .. } => {
                if stack.is_empty() {
                    roots += 1;
                    if roots > 1 {
                        return None;
                    }
                }
                stack.push(local.as_str().to_string());
                if stack.len() <= depth {
                    paths.push(stack.clone());
                }
            }
            xmlparser::Token::ElementEnd { end, .. } => match end {
                xmlparser::ElementEnd::Open => {}
                xmlparser::ElementEnd::Empty => {
                    stack.pop()?;
                }
                xmlparser::ElementEnd::Close(_, local) => {
                    if stack.pop()? != local.as_str() {
                        return None;
                    }
                }
            },
            xmlparser::Token::Text { text }
                if stack.is_empty() && !text.as_str().trim().is_empty() =>
            {
                return None;
            }
            xmlparser::Token::Cdata { .. } if stack.is_empty() => return None,
            _ => {}
        }
    }
    (stack.is_empty() && roots == 1).then_some(paths)
}

/// The interceptor that refuses a read's 2xx answer [`check`] does not accept (the call
/// then fails with its message). One per client, for its service.
#[derive(Clone, Copy)]
pub struct Answers(pub Service);

impl fmt::Debug for Answers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Answers({})", self.0.name())
    }
}

impl Intercept for Answers {
    fn name(&self) -> &'static str {
        "provisioner::providers::aws::answers::Answers"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Only an answer the SDK believed: a refused one already fails the call.
        if context.output_or_error().is_err() {
            return Ok(());
        }
        let response = context.response();
        if !response.status().is_success() {
            return Ok(());
        }
        // A streaming body (`GetObject`) was handed to the caller, not read here.
        let Some(body) = response.body().bytes() else {
            return Ok(());
        };
        let Some(operation) = cfg.load::<Metadata>().map(Metadata::name) else {
            return Ok(());
        };
        check(self.0, operation, body).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_answers_are_believed() {
        let ok = [
            (
                Service::S3,
                "ListBuckets",
                r#"<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>x</ID></Owner><Buckets/></ListAllMyBucketsResult>"#,
            ),
            (
                Service::S3,
                "GetBucketLocation",
                r#"<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#,
            ),
            (
                Service::Iam,
                "ListUsers",
                "<ListUsersResponse><ListUsersResult><Users><member><UserName>a</UserName></member></Users><IsTruncated>false</IsTruncated></ListUsersResult></ListUsersResponse>\n",
            ),
            (
                Service::Sns,
                "ListTopics",
                "<ListTopicsResponse><ListTopicsResult><Topics/></ListTopicsResult></ListTopicsResponse>",
            ),
            (
                Service::Sts,
                "GetCallerIdentity",
                "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>1</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
            ),
            (
                Service::SecretsManager,
                "ListSecrets",
                r#"{"SecretList": []}"#,
            ),
            (
                Service::SesV2,
                "ListEmailIdentities",
                r#"{"EmailIdentities": [], "NextToken": null}"#,
            ),
            (
                Service::SesV2,
                "GetEmailIdentity",
                r#"{"IdentityType": "DOMAIN"}"#,
            ),
            // Not a read: not checked.
            (Service::SecretsManager, "CreateSecret", ""),
            (Service::S3, "PutBucketVersioning", ""),
        ];
        for (service, op, body) in ok {
            assert_eq!(check(service, op, body.as_bytes()), Ok(()), "{op}");
        }
    }

    #[test]
    fn anything_else_is_refused_without_quoting_it() {
        let bad = [
            (Service::S3, "ListBuckets", ""),
            (Service::S3, "ListBuckets", "not xml, not json"),
            (
                Service::S3,
                "ListBuckets",
                r#"<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Buckets><Bucket><Name>ass"#,
            ),
            (
                Service::S3,
                "ListBuckets",
                "<ListAllMyBucketsResult><Owner/></ListAllMyBucketsResult>",
            ),
            (
                Service::S3,
                "ListBuckets",
                "<html><body>502 Bad Gateway</body></html>",
            ),
            (Service::S3, "GetBucketVersioning", "<a></b>"),
            (Service::S3, "GetBucketVersioning", "<a/><b/>"),
            (Service::S3, "GetBucketVersioning", "<a/>trailing"),
            (
                Service::Iam,
                "ListUsers",
                "<ListUsersResponse><ListUsersResult/></ListUsersResponse>",
            ),
            (
                Service::Iam,
                "GetUser",
                "<html><body>502 Bad Gateway</body></html>",
            ),
            (Service::Sns, "ListTopics", "{}"),
            (Service::SecretsManager, "ListSecrets", ""),
            (Service::SecretsManager, "ListSecrets", "{}"),
            (
                Service::SecretsManager,
                "ListSecrets",
                r#"{"SecretList": {}}"#,
            ),
            (Service::SecretsManager, "DescribeSecret", "[]"),
            (
                Service::SesV2,
                "ListEmailIdentities",
                r#"{"EmailIdentities": "none"}"#,
            ),
            (Service::SesV2, "ListConfigurationSets", "{}"),
            (
                Service::SesV2,
                "GetEmailIdentity",
                "<html><body>502 Bad Gateway</body></html>",
            ),
        ];
        for (service, op, body) in bad {
            let why = check(service, op, body.as_bytes()).expect_err(body);
            assert!(why.contains(op), "{why}");
            for quoted in ["ass", "Bad Gateway", "none", "trailing", "not xml"] {
                assert!(!why.contains(quoted), "{why} quotes the body");
            }
        }
    }
}
