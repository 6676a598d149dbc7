//! The DigitalOcean client against the simulator: pagination, typed errors, the client-side
//! budget, 429 storms, retries, and creates that never duplicate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use provisioner::providers::digitalocean::{ApiConfig, DoClient, DoError};
use provisioner::sim::Fault;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use reqwest::Method;
use serde_json::json;

fn client(sim: &DoSim, per_minute: u32) -> DoClient {
    let mut config = ApiConfig::new(sim.url(), "sim-token", per_minute);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_secs(2);
    DoClient::new(config).unwrap()
}

#[tokio::test]
async fn pagination_over_450_records_costs_three_requests() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let c = client(&sim, 250);
    c.request(
        Method::POST,
        "/v2/domains",
        Some(&json!({"name": "example.com"})),
    )
    .await
    .unwrap();
    sim.edit(|s| {
        let records = s.records.get_mut("example.com").unwrap();
        for i in 0..450u64 {
            records.push(json!({"id": 10_000 + i, "type": "TXT", "name": format!("r{i}"), "data": format!("v{i}"), "priority": null, "port": null, "ttl": 1800, "weight": null, "flags": null, "tag": null}));
        }
    });
    sim.faults.reset_requests();
    let all = c
        .list("/v2/domains/example.com/records", "domain_records")
        .await
        .unwrap();
    assert_eq!(all.len(), 454, "450 plus the SOA and three NS records");
    let ids: std::collections::BTreeSet<_> =
        all.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 454, "no record twice");
    let requests = sim.faults.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|r| r.contains("per_page=200")));
}

#[tokio::test]
async fn errors_are_typed_with_id_message_and_request_id() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let c = client(&sim, 250);
    let e = c
        .request(Method::POST, "/v2/vpcs", Some(&json!({"region": "nyc3"})))
        .await
        .unwrap_err();
    match &e {
        DoError::Api {
            status,
            id,
            request_id,
            retryable,
            ..
        } => {
            assert_eq!(
                (*status, id.as_str(), *retryable),
                (422, "unprocessable_entity", false)
            );
            assert!(request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    let e = c
        .request(Method::GET, "/v2/vpcs/nope", None)
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    let mut bad = ApiConfig::new(sim.url(), "wrong", 250);
    bad.max_retries = 0;
    let e = DoClient::new(bad)
        .unwrap()
        .request(Method::GET, "/v2/vpcs", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DoError::Api {
                status: 401,
                retryable: false,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("sim-token") && !e.to_string().contains("wrong"));
    c.request(Method::GET, "/v2/vpcs", None).await.unwrap();
    assert!(
        c.remaining().is_some_and(|r| r < 5000),
        "the server's remaining budget is read"
    );
}

#[tokio::test]
async fn the_client_never_exceeds_its_budget() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let mut config = ApiConfig::new(sim.url(), "sim-token", 10);
    config.window = Duration::from_millis(500);
    let c = Arc::new(DoClient::new(config).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..35 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.request(Method::GET, "/v2/vpcs", None).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let times: Vec<Instant> = sim
        .faults
        .requests_timed()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(times.len(), 35);
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_millis(450))
            .count();
        assert!(in_window <= 10, "{in_window} requests within one window");
    }
}

#[tokio::test]
async fn a_429_storm_is_waited_out_and_everything_completes() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let c = Arc::new(client(&sim, 250));
    sim.faults.inject(
        None,
        "/v2/",
        Fault::Respond {
            status: 429,
            body: r#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#.into(),
            headers: vec![("retry-after".into(), "1".into())],
        },
        Some(12),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.request(Method::POST, "/v2/vpcs", Some(&json!({"name": format!("v{i}"), "region": "nyc3", "ip_range": format!("10.9.{i}.0/24")})))
                .await
        }));
    }
    for t in tasks {
        t.await
            .unwrap()
            .expect("every create completes after the storm");
    }
    // retry-after was honoured: nobody came back before a second had passed.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(c.stats.rate_limited.load(Ordering::Relaxed), 12);
    let posts = sim
        .faults
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(
        posts,
        8 + 12,
        "each refused request was sent again once it was allowed"
    );
    assert_eq!(sim.edit(|s| s.vpcs.len()), 8, "no duplicates");
}

#[tokio::test]
async fn reads_are_retried_through_5xx_and_dropped_connections() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let c = client(&sim, 250);
    sim.faults.inject(
        Some("GET"),
        "/v2/vpcs",
        Fault::Respond {
            status: 503,
            body: r#"{"id":"server_error","message":"Server Error"}"#.into(),
            headers: vec![],
        },
        Some(2),
    );
    sim.faults
        .inject(Some("GET"), "/v2/firewalls", Fault::Drop, Some(1));
    sim.faults
        .inject(Some("GET"), "/v2/domains", Fault::Truncate, Some(1));
    c.list("/v2/vpcs", "vpcs").await.unwrap();
    c.list("/v2/firewalls", "firewalls").await.unwrap();
    c.list("/v2/domains", "domains").await.unwrap();
    assert_eq!(c.stats.retries.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn a_create_that_may_have_landed_is_reported_ambiguous_not_repeated() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let c = client(&sim, 250);
    // The server creates the VPC, then the connection drops before the answer arrives.
    sim.faults
        .inject(Some("POST"), "/v2/vpcs", Fault::Drop, Some(1));
    let e = c
        .request(
            Method::POST,
            "/v2/vpcs",
            Some(&json!({"name": "landed", "region": "nyc3"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DoError::Ambiguous { .. }), "{e}");
    assert_eq!(sim.edit(|s| s.vpcs.len()), 1, "it did land, exactly once");
    sim.faults.inject(
        Some("POST"),
        "/v2/vpcs",
        Fault::Respond {
            status: 500,
            body: r#"{"id":"server_error","message":"Server Error"}"#.into(),
            headers: vec![],
        },
        Some(1),
    );
    let e = c
        .request(
            Method::POST,
            "/v2/vpcs",
            Some(&json!({"name": "maybe", "region": "nyc3"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DoError::Ambiguous { .. }), "{e}");
    let posts = sim
        .faults
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 2, "neither create was sent twice");
}

#[tokio::test]
async fn cdn_calls_keep_to_their_own_five_per_window_limit() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let mut config = ApiConfig::new(sim.url(), "sim-token", 250);
    config.cdn_window = Duration::from_millis(400);
    let c = Arc::new(DoClient::new(config).unwrap());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            // Other calls are not held back by the CDN limit.
            let path = if i % 2 == 0 {
                "/v2/cdn/endpoints"
            } else {
                "/v2/vpcs"
            };
            c.request(Method::GET, path, None).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let cdn: Vec<Instant> = sim
        .faults
        .requests_timed()
        .into_iter()
        .filter(|(_, r)| r.contains("/v2/cdn/endpoints"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(cdn.len(), 6);
    for (i, t) in cdn.iter().enumerate() {
        let in_window = cdn[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_millis(350))
            .count();
        assert!(in_window <= 5, "{in_window} CDN calls within one window");
    }
}
