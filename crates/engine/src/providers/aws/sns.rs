//! `aws.sns_topic`: created (idempotently, as SNS does by name), attributes and tags.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sns::types::Tag;
use serde_json::{Map, Value, json};

use super::{AwsProvider, err, object, split_tags, text, wanted_tags};
use crate::live::LiveObject;
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ProviderError};

/// Lists the topics, then reads the attributes and tags of the managed ones.
pub async fn observe(
    p: &AwsProvider,
    wanted: BTreeSet<String>,
    in_flight: u32,
) -> Result<Vec<LiveObject>, ProviderError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = p
            .sns
            .list_topics()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| err("listing SNS topics", e))?;
        arns.extend(
            page.topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_string)),
        );
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    // Every managed topic at once (`in_flight` at a time).
    let reads = arns
        .into_iter()
        .map(|arn| {
            let name = arn.rsplit(':').next().unwrap_or_default().to_string();
            (arn, name)
        })
        .filter(|(_, name)| wanted.contains(name))
        .map(|(arn, name)| read(p.sns.clone(), arn, name));
    crate::providers::read_each(in_flight, reads)
        .await
        .into_iter()
        .collect()
}

async fn read(
    sns: aws_sdk_sns::Client,
    arn: String,
    name: String,
) -> Result<LiveObject, ProviderError> {
    let (arn, name) = (arn.as_str(), name.as_str());
    let (attrs, tags) = futures_util::join!(
        sns.get_topic_attributes().topic_arn(arn).send(),
        sns.list_tags_for_resource().resource_arn(arn).send()
    );
    let attrs = attrs.map_err(|e| err(&format!("reading SNS topic {name}"), e))?;
    let a = attrs.attributes().cloned().unwrap_or_default();
    let tags = tags.map_err(|e| err(&format!("reading SNS topic {name}'s tags"), e))?;
    let (tags, lineage) = split_tags(tags.tags().iter().map(|t| (t.key(), t.value())));
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    let opt = |k: &str| {
        a.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| json!(v))
            .unwrap_or(Value::Null)
    };
    fields.insert("display_name".into(), opt("DisplayName"));
    fields.insert("kms_master_key_id".into(), opt("KmsMasterKeyId"));
    fields.insert("tags".into(), Value::Object(tags));
    Ok(object(
        arn.to_string(),
        fields,
        attributes(arn, name),
        lineage,
    ))
}

fn attributes(arn: &str, name: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(name)),
    ])
}

/// Creates, updates or deletes a topic.
pub async fn apply(p: &AwsProvider, req: &ApplyRequest<'_>) -> Result<Applied, ProviderError> {
    let f = req.fields;
    if req.action == Action::Replace {
        // The executor replaces these by a delete and a create.
        return Err(crate::providers::not_in_place(req.kind));
    }
    if req.action == Action::Delete {
        let arn = req
            .cloud_id
            .ok_or_else(|| ProviderError::msg("a topic delete needs its ARN"))?;
        // Deleting a topic that does not exist succeeds.
        p.sns
            .delete_topic()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| err(&format!("deleting SNS topic {arn}"), e))?;
        if req.action == Action::Delete {
            return Ok(Applied::default());
        }
    }
    let name = text(f, "name").ok_or_else(|| ProviderError::msg("a topic needs its name"))?;
    let mut tags = Vec::new();
    for (k, v) in wanted_tags(f, req.lineage) {
        tags.push(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| err("building a tag", e))?,
        );
    }
    // CreateTopic is idempotent by name: it returns the existing topic's ARN.
    let arn = p
        .sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| err(&format!("creating SNS topic {name}"), e))?
        .topic_arn()
        .ok_or_else(|| ProviderError::msg("SNS returned no topic ARN"))?
        .to_string();
    for (attr, field) in [
        ("DisplayName", "display_name"),
        ("KmsMasterKeyId", "kms_master_key_id"),
    ] {
        let value = text(f, field).unwrap_or("");
        p.sns
            .set_topic_attributes()
            .topic_arn(&arn)
            .attribute_name(attr)
            .attribute_value(value)
            .send()
            .await
            .map_err(|e| err(&format!("setting {name}'s {attr}"), e))?;
    }
    // Tags: remove what is no longer wanted, then set the rest.
    let current = p
        .sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| err(&format!("reading {name}'s tags"), e))?;
    let keep: BTreeSet<&str> = tags.iter().map(|t| t.key()).collect();
    let stale: Vec<String> = current
        .tags()
        .iter()
        .map(|t| t.key().to_string())
        .filter(|k| !keep.contains(k.as_str()))
        .collect();
    if !stale.is_empty() {
        p.sns
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .map_err(|e| err(&format!("removing {name}'s old tags"), e))?;
    }
    p.sns
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| err(&format!("tagging {name}"), e))?;
    Ok(Applied {
        id: arn.clone(),
        attributes: attributes(&arn, name),
        secrets: BTreeMap::new(),
        updated_at: None,
        ..Default::default()
    })
}
