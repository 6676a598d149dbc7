//! IAM, SNS and STS: the `query` protocol (form-encoded `Action=…&Version=…`, XML answers
//! wrapped in `<{Action}Response><{Action}Result>`, errors as `<ErrorResponse>`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;

use super::xml::{el, escape};
use super::{ACCOUNT, AwsState, now_iso, xml_response};

/// An IAM user.
#[derive(Clone, Debug)]
pub struct User {
    /// Name.
    pub name: String,
    /// Path.
    pub path: String,
    /// Id.
    pub id: String,
    /// Created (ISO 8601).
    pub created: String,
    /// Tags in order.
    pub tags: Vec<(String, String)>,
    /// Inline policies by name (the document as sent).
    pub policies: BTreeMap<String, String>,
    /// Access keys: id → (created, secret).
    pub keys: Vec<(String, String, String)>,
}

/// An SNS topic.
#[derive(Clone, Debug, Default)]
pub struct Topic {
    /// Attributes by name.
    pub attributes: BTreeMap<String, String>,
    /// Tags in order.
    pub tags: Vec<(String, String)>,
}

/// Parses a form body (`+` is a space).
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| crate::percent_decode(&s.replace('+', " "));
            (d(k), d(v))
        })
        .collect()
}

struct Fail {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn fail(status: StatusCode, code: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        status,
        code,
        message: message.into(),
    }
}

fn member_list(p: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|i| p.get(&format!("{prefix}.member.{i}")).cloned())
        .collect()
}

fn tag_list(p: &BTreeMap<String, String>, prefix: &str) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let k = p.get(&format!("{prefix}.member.{i}.Key"))?;
            let v = p
                .get(&format!("{prefix}.member.{i}.Value"))
                .cloned()
                .unwrap_or_default();
            Some((k.clone(), v))
        })
        .collect()
}

fn merge_tags(into: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        into.retain(|(x, _)| *x != k);
        into.push((k, v));
    }
}

fn tags_xml(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("<member>{}{}</member>", el("Key", k), el("Value", v)))
        .collect()
}

/// Answers one query-protocol request for `service` (`iam`, `sns`, `sts`).
pub fn handle(
    region: &str,
    state: &mut AwsState,
    service: &str,
    p: &BTreeMap<String, String>,
) -> Response {
    let action = p.get("Action").cloned().unwrap_or_default();
    let result = match service {
        "iam" => iam(state, &action, p),
        "sns" => sns(region, state, &action, p),
        "sts" => match action.as_str() {
            "GetCallerIdentity" => Ok(format!(
                "<Arn>arn:aws:iam::{ACCOUNT}:user/sandbox</Arn><UserId>AIDASANDBOX</UserId><Account>{ACCOUNT}</Account>"
            )),
            _ => Err(fail(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("{action} is not supported"),
            )),
        },
        other => Err(fail(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("no service {other:?} here"),
        )),
    };
    let ns = match service {
        "iam" => "https://iam.amazonaws.com/doc/2010-05-08/",
        "sns" => "http://sns.amazonaws.com/doc/2010-03-31/",
        _ => "https://sts.amazonaws.com/doc/2011-06-15/",
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    match result {
        Ok(inner) => {
            let result = if inner.is_empty() {
                String::new()
            } else {
                format!("<{action}Result>{inner}</{action}Result>")
            };
            xml_response(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"{ns}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
                ),
            )
        }
        Err(f) => xml_response(
            f.status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                f.code,
                escape(&f.message)
            ),
        ),
    }
}

fn user_xml(u: &User) -> String {
    format!(
        "{}{}{}{}{}",
        el("Path", &u.path),
        el("UserName", &u.name),
        el("UserId", &u.id),
        el(
            "Arn",
            &format!("arn:aws:iam::{ACCOUNT}:user{}{}", u.path, u.name)
        ),
        el("CreateDate", &u.created)
    )
}

fn iam(state: &mut AwsState, action: &str, p: &BTreeMap<String, String>) -> Result<String, Fail> {
    let name = p.get("UserName").cloned().unwrap_or_default();
    let no_user = || {
        fail(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            format!("The user with name {name} cannot be found."),
        )
    };
    match action {
        "ListUsers" => Ok(format!(
            "<Users>{}</Users><IsTruncated>false</IsTruncated>",
            state
                .users
                .values()
                .map(|u| format!("<member>{}</member>", user_xml(u)))
                .collect::<String>()
        )),
        "CreateUser" => {
            if state.users.contains_key(&name) {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "EntityAlreadyExists",
                    format!("User with name {name} already exists."),
                ));
            }
            let n = state.next();
            let u = User {
                name: name.clone(),
                path: p.get("Path").cloned().unwrap_or_else(|| "/".into()),
                id: format!("AIDA{n:016}"),
                created: now_iso(),
                tags: tag_list(p, "Tags"),
                policies: BTreeMap::new(),
                keys: Vec::new(),
            };
            let out = format!("<User>{}</User>", user_xml(&u));
            state.users.insert(name, u);
            Ok(out)
        }
        "GetUser" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            Ok(format!("<User>{}</User>", user_xml(u)))
        }
        "DeleteUser" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            if !u.keys.is_empty() || !u.policies.is_empty() {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "DeleteConflict",
                    "Cannot delete entity, must delete access keys and policies first.",
                ));
            }
            state.users.remove(&name);
            Ok(String::new())
        }
        "TagUser" => {
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            merge_tags(&mut u.tags, tag_list(p, "Tags"));
            Ok(String::new())
        }
        "UntagUser" => {
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            let keys = member_list(p, "TagKeys");
            u.tags.retain(|(k, _)| !keys.contains(k));
            Ok(String::new())
        }
        "ListUserTags" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            Ok(format!(
                "<Tags>{}</Tags><IsTruncated>false</IsTruncated>",
                tags_xml(&u.tags)
            ))
        }
        "PutUserPolicy" => {
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            u.policies.insert(
                p.get("PolicyName").cloned().unwrap_or_default(),
                p.get("PolicyDocument").cloned().unwrap_or_default(),
            );
            Ok(String::new())
        }
        "GetUserPolicy" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            let policy = p.get("PolicyName").cloned().unwrap_or_default();
            let doc = u.policies.get(&policy).ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    format!("The user policy with name {policy} cannot be found."),
                )
            })?;
            // IAM returns the document URL-encoded.
            let encoded = provisioner_core::percent::percent_encode(doc);
            Ok(format!(
                "{}{}{}",
                el("UserName", &name),
                el("PolicyName", &policy),
                el("PolicyDocument", &encoded)
            ))
        }
        "DeleteUserPolicy" => {
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            let policy = p.get("PolicyName").cloned().unwrap_or_default();
            u.policies.remove(&policy).ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    format!("The user policy with name {policy} cannot be found."),
                )
            })?;
            Ok(String::new())
        }
        "ListUserPolicies" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            Ok(format!(
                "<PolicyNames>{}</PolicyNames><IsTruncated>false</IsTruncated>",
                u.policies
                    .keys()
                    .map(|k| el("member", k))
                    .collect::<String>()
            ))
        }
        "CreateAccessKey" => {
            let n = state.next();
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            if u.keys.len() >= 2 {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "LimitExceeded",
                    "Cannot exceed quota for AccessKeysPerUser: 2",
                ));
            }
            let id = format!("AKIASIM{n:013}");
            let secret = uuid::Uuid::new_v4().simple().to_string()
                + &uuid::Uuid::new_v4().simple().to_string()[..8];
            let created = now_iso();
            u.keys.push((id.clone(), created.clone(), secret.clone()));
            Ok(format!(
                "<AccessKey>{}{}{}{}{}</AccessKey>",
                el("UserName", &name),
                el("AccessKeyId", &id),
                el("Status", "Active"),
                el("SecretAccessKey", &secret),
                el("CreateDate", &created)
            ))
        }
        "DeleteAccessKey" => {
            let u = state.users.get_mut(&name).ok_or_else(no_user)?;
            let id = p.get("AccessKeyId").cloned().unwrap_or_default();
            let before = u.keys.len();
            u.keys.retain(|(k, _, _)| *k != id);
            if u.keys.len() == before {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    format!("The Access Key with id {id} cannot be found."),
                ));
            }
            Ok(String::new())
        }
        "ListAccessKeys" => {
            let u = state.users.get(&name).ok_or_else(no_user)?;
            Ok(format!(
                "<AccessKeyMetadata>{}</AccessKeyMetadata><IsTruncated>false</IsTruncated>",
                u.keys
                    .iter()
                    .map(|(id, created, _)| format!(
                        "<member>{}{}{}{}</member>",
                        el("UserName", &name),
                        el("AccessKeyId", id),
                        el("Status", "Active"),
                        el("CreateDate", created)
                    ))
                    .collect::<String>()
            ))
        }
        other => Err(fail(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("IAM {other} is not simulated"),
        )),
    }
}

fn sns(
    region: &str,
    state: &mut AwsState,
    action: &str,
    p: &BTreeMap<String, String>,
) -> Result<String, Fail> {
    let arn_of = |name: &str| format!("arn:aws:sns:{region}:{ACCOUNT}:{name}");
    let name_of = |arn: &str| arn.rsplit(':').next().unwrap_or_default().to_string();
    let topic_arn = p
        .get("TopicArn")
        .or_else(|| p.get("ResourceArn"))
        .cloned()
        .unwrap_or_default();
    let no_topic = || fail(StatusCode::NOT_FOUND, "NotFound", "Topic does not exist");
    match action {
        "CreateTopic" => {
            let name = p.get("Name").cloned().unwrap_or_default();
            if name.is_empty() || name.len() > 256 {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "Invalid parameter: Topic Name",
                ));
            }
            let t = state.topics.entry(name.clone()).or_default();
            merge_tags(&mut t.tags, tag_list(p, "Tags"));
            Ok(el("TopicArn", &arn_of(&name)))
        }
        "DeleteTopic" => {
            state.topics.remove(&name_of(&topic_arn));
            Ok(String::new())
        }
        "ListTopics" => Ok(format!(
            "<Topics>{}</Topics>",
            state
                .topics
                .keys()
                .map(|n| format!("<member>{}</member>", el("TopicArn", &arn_of(n))))
                .collect::<String>()
        )),
        "GetTopicAttributes" => {
            let name = name_of(&topic_arn);
            let t = state.topics.get(&name).ok_or_else(no_topic)?;
            let mut attrs = t.attributes.clone();
            attrs.insert("TopicArn".into(), arn_of(&name));
            attrs.insert("Owner".into(), ACCOUNT.into());
            attrs.entry("DisplayName".into()).or_default();
            Ok(format!(
                "<Attributes>{}</Attributes>",
                attrs
                    .iter()
                    .map(|(k, v)| format!("<entry>{}{}</entry>", el("key", k), el("value", v)))
                    .collect::<String>()
            ))
        }
        "SetTopicAttributes" => {
            let t = state
                .topics
                .get_mut(&name_of(&topic_arn))
                .ok_or_else(no_topic)?;
            let k = p.get("AttributeName").cloned().unwrap_or_default();
            let v = p.get("AttributeValue").cloned().unwrap_or_default();
            if v.is_empty() {
                t.attributes.remove(&k);
            } else {
                t.attributes.insert(k, v);
            }
            Ok(String::new())
        }
        "ListTagsForResource" => {
            let t = state
                .topics
                .get(&name_of(&topic_arn))
                .ok_or_else(no_topic)?;
            Ok(format!("<Tags>{}</Tags>", tags_xml(&t.tags)))
        }
        "TagResource" => {
            let t = state
                .topics
                .get_mut(&name_of(&topic_arn))
                .ok_or_else(no_topic)?;
            merge_tags(&mut t.tags, tag_list(p, "Tags"));
            Ok(String::new())
        }
        "UntagResource" => {
            let t = state
                .topics
                .get_mut(&name_of(&topic_arn))
                .ok_or_else(no_topic)?;
            let keys = member_list(p, "TagKeys");
            t.tags.retain(|(k, _)| !keys.contains(k));
            Ok(String::new())
        }
        other => Err(fail(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("SNS {other} is not simulated"),
        )),
    }
}
