//! The SES v2 simulator, driven by the official `aws-sdk-sesv2` client (so the wire format is
//! the SDK's own), with every exchange then checked against AWS's SES v2 model from botocore.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sesv2::types::{
    BehaviorOnMxFailure, DeliveryOptions, DkimSigningAttributes, DkimSigningKeyLength,
    EventDestinationDefinition, EventType, SnsDestination, SuppressionListReason,
    SuppressionOptions, Tag, TlsPolicy,
};
use provisioner::sim::ses::{SesConfig, SesSim};

fn client(url: &str) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .endpoint_url(url)
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

#[tokio::test]
async fn the_sdk_drives_every_operation_and_the_model_agrees() {
    let sim = SesSim::start(SesConfig {
        verification: Duration::from_millis(800),
        ..SesConfig::default()
    })
    .await
    .unwrap();
    let ses = client(sim.url());
    let topic = "arn:aws:sns:us-east-1:123456789012:ses-bounces";

    ses.create_configuration_set()
        .configuration_set_name("transactional")
        .suppression_options(
            SuppressionOptions::builder()
                .suppressed_reasons(SuppressionListReason::Bounce)
                .suppressed_reasons(SuppressionListReason::Complaint)
                .build(),
        )
        .delivery_options(
            DeliveryOptions::builder()
                .tls_policy(TlsPolicy::Require)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let again = ses
        .create_configuration_set()
        .configuration_set_name("transactional")
        .send()
        .await
        .unwrap_err();
    assert!(again.into_service_error().is_already_exists_exception());

    let created = ses
        .create_email_identity()
        .email_identity("example.com")
        .dkim_signing_attributes(
            DkimSigningAttributes::builder()
                .next_signing_key_length(DkimSigningKeyLength::Rsa2048Bit)
                .build(),
        )
        .configuration_set_name("transactional")
        .tags(
            Tag::builder()
                .key("owner")
                .value("platform")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let dkim = created.dkim_attributes().unwrap();
    assert_eq!(dkim.tokens().len(), 3, "Easy DKIM gives three tokens");
    // The botocore model has SigningHostedZone; this aws-sdk-sesv2 does not expose it yet, so
    // it is checked on the wire (the exchange check below) rather than through the SDK.
    assert!(
        sim.exchanges()
            .iter()
            .any(|x| x.response["DkimAttributes"]["SigningHostedZone"] == "dkim.amazonses.com")
    );
    assert_eq!(dkim.status().map(|s| s.as_str()), Some("PENDING"));

    ses.put_email_identity_mail_from_attributes()
        .email_identity("example.com")
        .mail_from_domain("mail.example.com")
        .behavior_on_mx_failure(BehaviorOnMxFailure::RejectMessage)
        .send()
        .await
        .unwrap();
    let bad = ses
        .put_email_identity_mail_from_attributes()
        .email_identity("example.com")
        .mail_from_domain("mail.elsewhere.org")
        .send()
        .await
        .unwrap_err();
    assert!(bad.into_service_error().is_bad_request_exception());

    let got = ses
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .unwrap();
    let mail_from = got.mail_from_attributes().unwrap();
    assert_eq!(mail_from.mail_from_domain(), "mail.example.com");
    assert_eq!(
        mail_from.behavior_on_mx_failure().as_str(),
        "REJECT_MESSAGE"
    );
    assert_eq!(got.configuration_set_name(), Some("transactional"));
    assert_eq!(
        got.verification_status().map(|s| s.as_str()),
        Some("PENDING")
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let got = ses
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.verification_status().map(|s| s.as_str()),
        Some("SUCCESS")
    );
    assert!(got.verified_for_sending_status());

    ses.put_email_identity_dkim_attributes()
        .email_identity("example.com")
        .signing_enabled(true)
        .send()
        .await
        .unwrap();
    ses.put_email_identity_configuration_set_attributes()
        .email_identity("example.com")
        .configuration_set_name("transactional")
        .send()
        .await
        .unwrap();

    let bounces = EventDestinationDefinition::builder()
        .enabled(true)
        .matching_event_types(EventType::Bounce)
        .matching_event_types(EventType::Complaint)
        .sns_destination(SnsDestination::builder().topic_arn(topic).build().unwrap())
        .build();
    ses.create_configuration_set_event_destination()
        .configuration_set_name("transactional")
        .event_destination_name("bounces")
        .event_destination(bounces)
        .send()
        .await
        .unwrap();
    let dests = ses
        .get_configuration_set_event_destinations()
        .configuration_set_name("transactional")
        .send()
        .await
        .unwrap();
    let d = &dests.event_destinations()[0];
    assert_eq!(d.name(), "bounces");
    assert_eq!(d.sns_destination().unwrap().topic_arn(), topic);
    ses.update_configuration_set_event_destination()
        .configuration_set_name("transactional")
        .event_destination_name("bounces")
        .event_destination(
            EventDestinationDefinition::builder()
                .enabled(false)
                .matching_event_types(EventType::Bounce)
                .sns_destination(SnsDestination::builder().topic_arn(topic).build().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ses.put_configuration_set_sending_options()
        .configuration_set_name("transactional")
        .sending_enabled(true)
        .send()
        .await
        .unwrap();
    ses.put_configuration_set_reputation_options()
        .configuration_set_name("transactional")
        .reputation_metrics_enabled(true)
        .send()
        .await
        .unwrap();
    ses.put_configuration_set_suppression_options()
        .configuration_set_name("transactional")
        .suppressed_reasons(SuppressionListReason::Bounce)
        .send()
        .await
        .unwrap();
    ses.put_configuration_set_delivery_options()
        .configuration_set_name("transactional")
        .tls_policy(TlsPolicy::Optional)
        .send()
        .await
        .unwrap();
    let cs = ses
        .get_configuration_set()
        .configuration_set_name("transactional")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cs.delivery_options()
            .and_then(|d| d.tls_policy())
            .map(|t| t.as_str()),
        Some("OPTIONAL")
    );
    assert!(
        cs.reputation_options()
            .unwrap()
            .reputation_metrics_enabled()
    );

    let arn = "arn:aws:ses:us-east-1:123456789012:identity/example.com";
    ses.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("env").value("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = ses
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    ses.untag_resource()
        .resource_arn(arn)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    let tags = ses
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);

    let ids = ses.list_email_identities().send().await.unwrap();
    assert_eq!(ids.email_identities().len(), 1);
    ses.list_configuration_sets().send().await.unwrap();

    ses.delete_configuration_set_event_destination()
        .configuration_set_name("transactional")
        .event_destination_name("bounces")
        .send()
        .await
        .unwrap();
    ses.delete_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .unwrap();
    let missing = ses
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_not_found_exception());
    ses.delete_configuration_set()
        .configuration_set_name("transactional")
        .send()
        .await
        .unwrap();

    // Every exchange, checked against AWS's own model.
    let model = support::aws_model::load("sesv2/2019-09-27");
    let mut operations = BTreeSet::new();
    let mut problems = Vec::new();
    for x in sim.exchanges() {
        // Known disagreement: this aws-sdk-sesv2 lists with `GET /v2/email/identities` and
        // `GET /v2/email/configuration-sets`; the current model binds ListEmailIdentities and
        // ListConfigurationSets to `POST /v2/email/list-…`. The simulator accepts both.
        let (method, path) = match (x.method.as_str(), x.path.as_str()) {
            ("GET", "/v2/email/identities") => ("POST", "/v2/email/list-identities"),
            ("GET", "/v2/email/configuration-sets") => {
                ("POST", "/v2/email/list-configuration-sets")
            }
            (m, p) => (m, p),
        };
        let Some((name, op)) = model.operation(method, path) else {
            problems.push(format!(
                "{} {}: no such operation in the model",
                x.method, x.path
            ));
            continue;
        };
        operations.insert(name.to_string());
        problems.extend(model.check_body(
            op["input"]["shape"].as_str(),
            &x.request,
            &format!("{name} request"),
        ));
        if x.status == 200 {
            problems.extend(model.check_body(
                op["output"]["shape"].as_str(),
                &x.response,
                &format!("{name} response"),
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        operations.len(),
        22,
        "every operation above was seen and matched: {operations:?}"
    );
}

#[tokio::test]
async fn unsigned_requests_and_faults() {
    let sim = SesSim::start(SesConfig::default()).await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/v2/email/identities", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    sim.faults.inject(
        None,
        "/v2/email/identities",
        provisioner::sim::Fault::Respond {
            status: 429,
            body: r#"{"message":"Too many requests."}"#.into(),
            headers: vec![("x-amzn-errortype".into(), "TooManyRequestsException".into())],
        },
        Some(1),
    );
    let e = client(sim.url())
        .list_email_identities()
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_too_many_requests_exception());
}
