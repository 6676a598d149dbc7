//! DigitalOcean kinds (API v2 and Spaces). Field names follow the API; what forces a
//! replacement follows the API's update schemas and the Terraform provider's `ForceNew`
//! (see `../shared/reference/cloud-apis.md` A.2).

use std::collections::BTreeMap;

use super::common::{CorsRule, LifecycleRule, check_unique_rule_ids};
use super::{Expiry, Export, KindInfo, KindRules, Replacement, exact, plain, secret};
use crate::desired::refs::contains_ref;
use crate::desired::schema::{Cx, Set};
use crate::desired::source::Span;
use crate::desired::values::{
    BucketName, Cidr, DnsName, DoRegion, Duration, IpAddress, IpOrCidr, KubernetesVersion,
    PortSpec, RecordName, SizeSlug, TimeOfDay, parse_cidr,
};
use crate::{block, string_enum};

block! {
    /// A VPC: a private network in one region.
    pub struct Vpc {
        /// Name, unique in the account: letters, digits, `-` and `.`.
        name: String => update,
        /// Region slug, e.g. `nyc3`.
        region: DoRegion => replace,
        /// Free text, at most 255 characters.
        description: Option<String> => update,
        /// Private range (RFC 1918, /16 to /28); DigitalOcean picks a free /20 when left out.
        ip_range: Option<Cidr> => replace,
    }
    check = check_vpc;
}

fn check_vpc(v: &Vpc, span: Span, cx: &mut Cx<'_>) {
    if !contains_ref(&v.name)
        && (v.name.is_empty()
            || !v
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        cx.nested("name", |cx| {
            cx.error(
                span,
                format!(
                    "VPC name \"{}\" may only hold letters, digits, `-` and `.`",
                    v.name
                ),
            );
        });
    }
    if v.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        cx.nested("description", |cx| {
            cx.error(span, "is longer than 255 characters");
        });
    }
    if let Some(range) = v.ip_range.as_ref().filter(|r| !contains_ref(r.as_str()))
        && let Ok((ip, len)) = parse_cidr(range.as_str())
    {
        let private = match ip {
            std::net::IpAddr::V4(v4) => v4.is_private(),
            std::net::IpAddr::V6(_) => false,
        };
        if !private || !(16..=28).contains(&len) {
            cx.nested("ip_range", |cx| {
                cx.error(
                    span,
                    format!(
                        "\"{range}\" must be an RFC 1918 IPv4 range between /16 and /28",
                        range = range.as_str()
                    ),
                )
                .set_help("for example \"10.10.0.0/16\" or \"172.16.0.0/20\"");
            });
        }
    }
}

impl KindInfo for Vpc {
    const DOC: &'static str = "A VPC network. The first VPC in a region becomes its default; a VPC with members cannot be deleted.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the VPC's UUID"),
        plain("urn", "`do:vpc:<id>`, for project assignment"),
        plain("name", "the name"),
        plain(
            "ip_range",
            "the private range, including one DigitalOcean picked",
        ),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("vpc name {}", self.name))
    }
}

string_enum! {
    /// Day of a DOKS maintenance window.
    pub enum MaintenanceDay {
        /// Any day.
        Any = "any",
        /// Monday.
        Monday = "monday",
        /// Tuesday.
        Tuesday = "tuesday",
        /// Wednesday.
        Wednesday = "wednesday",
        /// Thursday.
        Thursday = "thursday",
        /// Friday.
        Friday = "friday",
        /// Saturday.
        Saturday = "saturday",
        /// Sunday.
        Sunday = "sunday",
    }
}

block! {
    /// When DigitalOcean may upgrade the cluster.
    pub struct MaintenancePolicy {
        /// Start of the window, `HH:MM` UTC.
        start_time: TimeOfDay => update,
        /// Day of the window.
        day: MaintenanceDay = "any" => update,
    }
}

block! {
    /// Who may reach the Kubernetes API.
    pub struct ControlPlaneFirewall {
        /// Whether the allow-list is enforced.
        enabled: bool = true => update,
        /// Addresses allowed to reach the API server (order does not matter).
        allowed_addresses: Set<IpOrCidr> => update,
    }
}

string_enum! {
    /// Effect of a node taint.
    pub enum TaintEffect {
        /// Pods without a toleration are not scheduled.
        NoSchedule = "NoSchedule",
        /// The scheduler avoids the node.
        PreferNoSchedule = "PreferNoSchedule",
        /// Running pods without a toleration are evicted.
        NoExecute = "NoExecute",
    }
}

block! {
    /// A Kubernetes taint on every node of a pool.
    pub struct Taint {
        /// Taint key.
        key: String => update,
        /// Taint value.
        value: String = "" => update,
        /// Taint effect.
        effect: TaintEffect => update,
    }
}

block! {
    /// A node pool of a DOKS cluster; the table key is the pool's name.
    pub struct NodePool {
        /// Droplet size slug of every node, e.g. `s-4vcpu-8gb`.
        size: SizeSlug => replace,
        /// Number of nodes. With `auto_scale = true` it is only the initial size (optional:
        /// `min_nodes` when left out) and is never corrected: the autoscaler owns it.
        count: Option<u32> => update [1, 512],
        /// Whether the cluster autoscaler resizes the pool.
        auto_scale: bool = false => update,
        /// Fewest nodes the autoscaler keeps (with `auto_scale`).
        min_nodes: Option<u32> => update [0, 512],
        /// Most nodes the autoscaler adds (with `auto_scale`).
        max_nodes: Option<u32> => update [1, 512],
        /// Kubernetes labels on every node.
        labels: BTreeMap<String, String> => update,
        /// Kubernetes taints on every node (order does not matter).
        taints: Set<Taint> => update,
        /// DigitalOcean tags on the pool's droplets (order does not matter).
        tags: Set<String> => update,
    }
    check = check_pool;
}

fn check_pool(p: &NodePool, span: Span, cx: &mut Cx<'_>) {
    if p.auto_scale {
        match (p.min_nodes, p.max_nodes) {
            (Some(min), Some(max)) => {
                if min > max {
                    cx.error(
                        span,
                        format!("min_nodes ({min}) is larger than max_nodes ({max})"),
                    );
                } else if let Some(count) = p.count
                    && (count < min || count > max)
                {
                    cx.error(
                        span,
                        format!(
                            "count ({count}) must lie between min_nodes ({min}) and max_nodes ({max})"
                        ),
                    );
                }
            }
            _ => {
                cx.error(
                    span,
                    "an auto-scaling pool needs both `min_nodes` and `max_nodes`",
                );
            }
        }
    } else {
        if p.min_nodes.is_some() || p.max_nodes.is_some() {
            cx.error(
                span,
                "`min_nodes` and `max_nodes` only apply when `auto_scale = true`",
            )
            .set_help("set `auto_scale = true`, or remove them");
        }
        if p.count.is_none() {
            cx.error(span, "missing required field `count`")
                .set_help("a pool without `auto_scale = true` needs its number of nodes");
        }
    }
}

/// An autoscaled pool's `count` is its initial size only (the DigitalOcean Terraform
/// provider's `node_count` is optional and its `DiffSuppressFunc` ignores it against the
/// actual size, `kubernetes/kubernetes.go`): it is moved to `initial_count`, which the
/// planner does not compare and the provider sends on create.
pub fn canonical_cluster(v: &mut serde_json::Value) {
    let Some(pools) = v.get_mut("node_pools").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for pool in pools.values_mut() {
        if pool["auto_scale"] == serde_json::json!(true)
            && let Some(p) = pool.as_object_mut()
            && let Some(count) = p.remove("count")
            && !count.is_null()
        {
            p.insert("initial_count".into(), count);
        }
    }
}

/// True for the record types whose `data` is a host name that DigitalOcean wants fully
/// qualified (digitalocean/api-v2#130, doctl#919, external-dns#624).
pub fn host_name_data(record_type: &str) -> bool {
    matches!(record_type, "CNAME" | "MX" | "NS" | "SRV")
}

/// A record's `data` as it is compared: a host name without its final dot, and `@` (the
/// zone itself) written as the zone's name, which is how the provider reads both back.
pub fn canonical_record(v: &mut serde_json::Value) {
    let kind = v["type"].as_str().unwrap_or("").to_string();
    if !host_name_data(&kind) {
        return;
    }
    let domain = v["domain"].clone();
    if let Some(data) = v["data"].as_str() {
        if data == "@" {
            v["data"] = domain;
        } else if let Some(bare) = data.strip_suffix('.') {
            v["data"] = serde_json::json!(bare);
        }
    }
}

block! {
    /// A managed Kubernetes (DOKS) cluster with its node pools.
    pub struct KubernetesCluster {
        /// Cluster name, unique in the account.
        name: String => update,
        /// Region slug.
        region: DoRegion => replace,
        /// DOKS version slug; upgraded through the upgrade endpoint, never downgraded.
        version: KubernetesVersion => upgrade,
        /// VPC the nodes join (usually a reference to a `digitalocean.vpc`).
        vpc_uuid: Option<String> => replace,
        /// Pod network range.
        cluster_subnet: Option<Cidr> => replace,
        /// Service network range.
        service_subnet: Option<Cidr> => replace,
        /// Highly available control plane; can be turned on, never off.
        ha: bool = false => upgrade,
        /// Let DigitalOcean apply patch upgrades in the maintenance window.
        auto_upgrade: bool = false => update,
        /// Add surge nodes during upgrades so workloads keep their capacity.
        surge_upgrade: bool = true => update,
        /// Tags (DigitalOcean adds `k8s` and `k8s:<id>` itself; order does not matter).
        tags: Set<String> => update,
        /// Maintenance window; DigitalOcean picks one when left out.
        maintenance_policy: Option<MaintenancePolicy> => update,
        /// Allow-list for the API server.
        control_plane_firewall: Option<ControlPlaneFirewall> => update,
        /// Node pools by name; at least one. Pools are added, resized and removed in place.
        node_pools: BTreeMap<String, NodePool> => update,
        /// Lifetime of the token in the exported `kubeconfig`; refreshed before it expires.
        kubeconfig_expiry: Duration = "7d" => local,
    }
    check = check_cluster;
}

fn check_cluster(c: &KubernetesCluster, span: Span, cx: &mut Cx<'_>) {
    if c.name.is_empty() {
        cx.nested("name", |cx| {
            cx.error(span, "must not be empty");
        });
    }
    if c.node_pools.is_empty() {
        cx.nested("node_pools", |cx| {
            cx.error(span, "a cluster needs at least one node pool")
                .set_help("add one: `[digitalocean.kubernetes_cluster.NAME.node_pools.workers]` with `size` and `count`");
        });
    }
    for name in c.node_pools.keys() {
        if !name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            || name.len() > 63
        {
            cx.nested("node_pools", |cx| {
                cx.error(span, format!("pool name \"{name}\" may only hold lower-case letters, digits and `-` (at most 63)"));
            });
        }
    }
}

impl KindInfo for KubernetesCluster {
    const DOC: &'static str = "A DOKS cluster. Creation returns while the cluster is `provisioning`; provisioner waits for `running`. Node pools are part of the cluster and are addressed as `node_pools.<name>.<field>` in `ignore_changes`.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the cluster's UUID"),
        plain("urn", "`do:kubernetes:<id>`"),
        plain("name", "the name"),
        plain("endpoint", "the API server URL"),
        plain("ipv4", "the API server's public address"),
        secret(
            "kubeconfig",
            "a kubeconfig with a token valid for `kubeconfig_expiry`",
        ),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[Expiry {
            output: "kubeconfig",
            lifetime_field: "kubeconfig_expiry",
            default_seconds: 7 * 86_400,
        }],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("kubernetes cluster name {}", self.name))
    }
}

string_enum! {
    /// Protocol of a load balancer forwarding rule.
    pub enum LbProtocol {
        /// HTTP.
        Http = "http",
        /// HTTPS.
        Https = "https",
        /// HTTP/2.
        Http2 = "http2",
        /// HTTP/3.
        Http3 = "http3",
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
}

string_enum! {
    /// Health check protocol.
    pub enum HealthProtocol {
        /// HTTP.
        Http = "http",
        /// HTTPS.
        Https = "https",
        /// TCP connect.
        Tcp = "tcp",
    }
}

string_enum! {
    /// Whether a load balancer faces the internet.
    pub enum LbNetwork {
        /// Public.
        External = "EXTERNAL",
        /// Inside the VPC only.
        Internal = "INTERNAL",
    }
}

block! {
    /// How traffic entering the load balancer reaches the targets.
    pub struct ForwardingRule {
        /// Protocol clients speak.
        entry_protocol: LbProtocol => update,
        /// Port clients connect to.
        entry_port: u16 => update [1, 65535],
        /// Protocol spoken to the targets.
        target_protocol: LbProtocol => update,
        /// Port on the targets.
        target_port: u16 => update [1, 65535],
        /// Certificate for HTTPS entry (unless `tls_passthrough`).
        certificate_id: Option<String> => update,
        /// Pass TLS through to the targets untouched.
        tls_passthrough: bool = false => update,
    }
    check = check_rule;
}

fn check_rule(r: &ForwardingRule, span: Span, cx: &mut Cx<'_>) {
    let tls = matches!(
        r.entry_protocol,
        LbProtocol::Https | LbProtocol::Http2 | LbProtocol::Http3
    );
    if tls && r.certificate_id.is_none() && !r.tls_passthrough {
        cx.error(
            span,
            format!(
                "an `{}` forwarding rule needs `certificate_id` or `tls_passthrough = true`",
                r.entry_protocol
            ),
        );
    }
    if r.tls_passthrough && r.certificate_id.is_some() {
        cx.error(
            span,
            "`tls_passthrough` and `certificate_id` exclude each other",
        );
    }
}

block! {
    /// Load balancer health check.
    pub struct HealthCheck {
        /// Protocol of the check.
        protocol: HealthProtocol = "http" => update,
        /// Port on the targets.
        port: u16 = 80 => update [1, 65535],
        /// Path for HTTP(S) checks.
        path: String = "/" => update,
        /// Seconds between checks.
        check_interval_seconds: u32 = 10 => update [3, 300],
        /// Seconds to wait for an answer.
        response_timeout_seconds: u32 = 5 => update [3, 300],
        /// Passes before a target is healthy.
        healthy_threshold: u32 = 5 => update [2, 10],
        /// Failures before a target is unhealthy.
        unhealthy_threshold: u32 = 3 => update [2, 10],
    }
}

block! {
    /// A regional load balancer.
    pub struct LoadBalancer {
        /// Name, unique in the account.
        name: String => update,
        /// Region slug.
        region: DoRegion => replace,
        /// Size in units of capacity (at most one change an hour).
        size_unit: u32 = 1 => update [1, 100],
        /// VPC the load balancer lives in.
        vpc_uuid: Option<String> => replace,
        /// `EXTERNAL` (public) or `INTERNAL`.
        network: LbNetwork = "EXTERNAL" => replace,
        /// Target every droplet with this tag (excludes `droplet_ids`).
        tag: Option<String> => update,
        /// Target these droplets (excludes `tag`; order does not matter).
        droplet_ids: Set<u64> => update,
        /// At least one forwarding rule (order does not matter: the API keeps its own).
        forwarding_rules: Set<ForwardingRule> => update,
        /// Health check of the targets; DigitalOcean's defaults when left out.
        health_check: Option<HealthCheck> => update,
        /// Redirect HTTP to HTTPS.
        redirect_http_to_https: bool = false => update,
        /// Send the PROXY protocol header to targets.
        enable_proxy_protocol: bool = false => update,
        /// Keep connections to targets open.
        enable_backend_keepalive: bool = false => update,
        /// Idle timeout for HTTP connections, in seconds.
        http_idle_timeout_seconds: u32 = 60 => update [30, 600],
        /// Do not create DNS records for Let's Encrypt certificates.
        disable_lets_encrypt_dns_records: bool = false => update,
    }
    check = check_lb;
}

fn check_lb(lb: &LoadBalancer, span: Span, cx: &mut Cx<'_>) {
    if lb.forwarding_rules.is_empty() {
        cx.nested("forwarding_rules", |cx| {
            cx.error(span, "a load balancer needs at least one forwarding rule");
        });
    }
    if lb.tag.is_some() && !lb.droplet_ids.is_empty() {
        cx.error(
            span,
            "`tag` and `droplet_ids` exclude each other: target droplets one way",
        );
    }
}

impl KindInfo for LoadBalancer {
    const DOC: &'static str = "A load balancer. Its update replaces the whole object, so provisioner always sends every field.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the load balancer's UUID"),
        plain("urn", "`do:loadbalancer:<id>`"),
        plain("ip", "the public IPv4 address"),
        plain("name", "the name"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // Nothing unique stops two of these existing side by side for a moment.
        replacement: Replacement::CreateBeforeDestroy,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("load balancer name {}", self.name))
    }
}

string_enum! {
    /// Firewall rule protocol.
    pub enum FwProtocol {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
        /// ICMP (no ports).
        Icmp = "icmp",
    }
}

block! {
    /// The peers a firewall rule matches.
    pub struct FwPeers {
        /// IP addresses and CIDR blocks.
        addresses: Set<IpOrCidr> => update,
        /// Droplets with these tags.
        tags: Set<String> => update,
        /// These droplets.
        droplet_ids: Set<u64> => update,
        /// These load balancers.
        load_balancer_uids: Set<String> => update,
        /// These Kubernetes clusters' nodes.
        kubernetes_ids: Set<String> => update,
    }
}

impl FwPeers {
    fn is_empty(&self) -> bool {
        self.addresses.is_empty()
            && self.tags.is_empty()
            && self.droplet_ids.is_empty()
            && self.load_balancer_uids.is_empty()
            && self.kubernetes_ids.is_empty()
    }
}

block! {
    /// Traffic allowed in.
    pub struct InboundRule {
        /// Protocol.
        protocol: FwProtocol => update,
        /// Ports for TCP and UDP: `"22"`, `"8000-9000"` or `"all"`.
        ports: Option<PortSpec> => update,
        /// Where the traffic may come from.
        sources: FwPeers => update,
    }
    check = check_inbound;
}

fn check_ports(protocol: FwProtocol, ports: &Option<PortSpec>, span: Span, cx: &mut Cx<'_>) {
    match (protocol, ports) {
        (FwProtocol::Icmp, Some(_)) => {
            cx.error(span, "ICMP rules have no ports: remove `ports`");
        }
        (FwProtocol::Tcp | FwProtocol::Udp, None) => {
            cx.error(
                span,
                format!("a {protocol} rule needs `ports` (\"22\", \"8000-9000\" or \"all\")"),
            );
        }
        _ => {}
    }
}

fn check_inbound(r: &InboundRule, span: Span, cx: &mut Cx<'_>) {
    check_ports(r.protocol, &r.ports, span, cx);
    if r.sources.is_empty() {
        cx.error(span, "an inbound rule needs at least one source")
            .set_help("for example `sources = { addresses = [\"0.0.0.0/0\", \"::/0\"] }`");
    }
}

block! {
    /// Traffic allowed out.
    pub struct OutboundRule {
        /// Protocol.
        protocol: FwProtocol => update,
        /// Ports for TCP and UDP: `"22"`, `"8000-9000"` or `"all"`.
        ports: Option<PortSpec> => update,
        /// Where the traffic may go.
        destinations: FwPeers => update,
    }
    check = check_outbound;
}

fn check_outbound(r: &OutboundRule, span: Span, cx: &mut Cx<'_>) {
    check_ports(r.protocol, &r.ports, span, cx);
    if r.destinations.is_empty() {
        cx.error(span, "an outbound rule needs at least one destination");
    }
}

block! {
    /// A cloud firewall applied to droplets by tag or id.
    pub struct Firewall {
        /// Name: letters, digits, `-`, `_` and `.`, at most 255.
        name: String => update,
        /// Inbound rules (order does not matter: the API keeps its own).
        inbound_rules: Set<InboundRule> => update,
        /// Outbound rules (order does not matter).
        outbound_rules: Set<OutboundRule> => update,
        /// Apply to droplets with these tags (DOKS nodes carry `k8s:<cluster id>`).
        tags: Set<String> => update,
        /// Apply to these droplets.
        droplet_ids: Set<u64> => update,
    }
    check = check_firewall;
}

fn check_firewall(f: &Firewall, span: Span, cx: &mut Cx<'_>) {
    if f.inbound_rules.is_empty() && f.outbound_rules.is_empty() {
        cx.error(
            span,
            "a firewall needs at least one inbound or outbound rule",
        );
    }
}

impl KindInfo for Firewall {
    const DOC: &'static str = "A cloud firewall. Its update replaces the whole object: rules added by hand are removed on the next pass in `enforce` mode.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the firewall's UUID"),
        plain("name", "the name"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // Nothing unique stops two of these existing side by side for a moment.
        replacement: Replacement::CreateBeforeDestroy,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("firewall name {}", self.name))
    }
}

block! {
    /// A DNS zone hosted by DigitalOcean.
    pub struct Domain {
        /// The zone name, e.g. `example.com`.
        name: DnsName => replace,
        /// Creates an apex A record pointing here (only when the domain is created).
        ip_address: Option<IpAddress> => replace,
    }
}

impl KindInfo for Domain {
    const DOC: &'static str =
        "A DNS zone. Domains have no update call: a change replaces the zone.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the zone name"),
        plain("urn", "`do:domain:<name>`"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("domain {}", self.name.as_str()))
    }
}

string_enum! {
    /// DNS record type.
    pub enum RecordType {
        /// IPv4 address.
        A = "A",
        /// IPv6 address.
        Aaaa = "AAAA",
        /// Certificate authority authorisation.
        Caa = "CAA",
        /// Alias.
        Cname = "CNAME",
        /// Mail exchanger.
        Mx = "MX",
        /// Name server.
        Ns = "NS",
        /// Service locator.
        Srv = "SRV",
        /// Text.
        Txt = "TXT",
    }
}

string_enum! {
    /// CAA record tag.
    pub enum CaaTag {
        /// Who may issue certificates.
        Issue = "issue",
        /// Who may issue wildcard certificates.
        IssueWild = "issuewild",
        /// Where to report violations.
        Iodef = "iodef",
    }
}

block! {
    /// A record in a DigitalOcean-hosted zone.
    pub struct DomainRecord {
        /// The zone, usually `${digitalocean.domain.NAME.name}`.
        domain: String => replace,
        /// Record type.
        r#type: RecordType => replace,
        /// Name relative to the zone: `@` for the apex.
        name: RecordName => update,
        /// Value: an address, a host name (with or without the final dot: provisioner sends
        /// it fully qualified), `@` for the zone itself, or text.
        data: String => update,
        /// Priority (MX, SRV).
        priority: Option<u16> => update [0, 65535],
        /// Port (SRV).
        port: Option<u16> => update [0, 65535],
        /// Time to live in seconds; records of one name and type share one TTL (RFC 2181
        /// §5.2), so they must agree.
        ttl: u32 = 1800 => update [30, 604800],
        /// Weight (SRV).
        weight: Option<u16> => update [0, 65535],
        /// Flags (CAA).
        flags: Option<u8> => update [0, 255],
        /// Tag (CAA).
        tag: Option<CaaTag> => update,
    }
    check = check_record;
}

fn check_record(r: &DomainRecord, span: Span, cx: &mut Cx<'_>) {
    let literal = !contains_ref(&r.data);
    let mut need = |field: &str, present: bool| {
        if !present {
            cx.error(span, format!("{} records need `{field}`", r.r#type));
        }
    };
    match r.r#type {
        RecordType::Mx => need("priority", r.priority.is_some()),
        RecordType::Srv => {
            need("priority", r.priority.is_some());
            need("port", r.port.is_some());
            need("weight", r.weight.is_some());
        }
        RecordType::Caa => {
            need("flags", r.flags.is_some());
            need("tag", r.tag.is_some());
        }
        _ => {}
    }
    if r.data.is_empty() {
        cx.nested("data", |cx| {
            cx.error(span, "must not be empty");
        });
    } else if literal {
        let bad = match r.r#type {
            RecordType::A => r
                .data
                .parse::<std::net::Ipv4Addr>()
                .is_err()
                .then_some("an IPv4 address"),
            RecordType::Aaaa => r
                .data
                .parse::<std::net::Ipv6Addr>()
                .is_err()
                .then_some("an IPv6 address"),
            _ => None,
        };
        if let Some(what) = bad {
            cx.nested("data", |cx| {
                cx.error(
                    span,
                    format!(
                        "\"{}\" is not {what}, as an {} record needs",
                        r.data, r.r#type
                    ),
                );
            });
        }
    }
}

impl KindInfo for DomainRecord {
    const DOC: &'static str =
        "A DNS record. Changing its type or zone replaces it; everything else updates in place.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the record's numeric id"),
        plain("fqdn", "the full name"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("domain"), exact("type"), exact("name"), exact("data")],
        ignore_case: &[],
        // Nothing unique stops two of these existing side by side for a moment.
        replacement: Replacement::CreateBeforeDestroy,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
}

block! {
    /// A CDN endpoint in front of a Spaces bucket.
    pub struct CdnEndpoint {
        /// Origin: the bucket's host name, usually `${digitalocean.spaces_bucket.NAME.bucket_domain_name}`.
        origin: String => replace,
        /// Cache lifetime in seconds: 60, 600, 3600, 86400 or 604800.
        ttl: u32 = 3600 => update,
        /// Custom host name served by the CDN (needs `certificate_id`).
        custom_domain: Option<DnsName> => update,
        /// Certificate for the custom domain.
        certificate_id: Option<String> => update,
    }
    check = check_cdn;
}

fn check_cdn(c: &CdnEndpoint, span: Span, cx: &mut Cx<'_>) {
    const TTLS: [u32; 5] = [60, 600, 3600, 86_400, 604_800];
    if !TTLS.contains(&c.ttl) {
        cx.nested("ttl", |cx| {
            cx.error(
                span,
                format!(
                    "{} is not an allowed CDN TTL: use 60, 600, 3600, 86400 or 604800",
                    c.ttl
                ),
            );
        });
    }
    if c.custom_domain.is_some() && c.certificate_id.is_none() {
        cx.error(span, "a `custom_domain` needs a `certificate_id`");
    }
}

impl KindInfo for CdnEndpoint {
    const DOC: &'static str = "A Spaces CDN endpoint. The CDN API allows 5 requests per 10 seconds; provisioner paces itself.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the endpoint's UUID"),
        plain("endpoint", "the CDN host name"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("origin")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("cdn origin {}", self.origin))
    }
}

string_enum! {
    /// Canned ACL of a Spaces bucket.
    pub enum BucketAcl {
        /// Only key holders.
        Private = "private",
        /// Anyone may read objects.
        PublicRead = "public-read",
    }
}

block! {
    /// A Spaces bucket (S3-compatible object storage).
    pub struct SpacesBucket {
        /// Bucket name, unique within the region.
        name: BucketName => replace,
        /// Region slug.
        region: DoRegion => replace,
        /// Canned ACL.
        acl: BucketAcl = "private" => update,
        /// Keep every version of every object.
        versioning: bool = false => update,
        /// CORS rules.
        cors_rules: Vec<CorsRule> => update,
        /// Lifecycle rules (Spaces supports expiry and multipart clean-up only).
        lifecycle_rules: Vec<LifecycleRule> => update,
        /// Delete the bucket even when it still holds objects.
        force_destroy: bool = false => local,
    }
    check = check_spaces_bucket;
}

fn check_spaces_bucket(b: &SpacesBucket, span: Span, cx: &mut Cx<'_>) {
    cx.nested("lifecycle_rules", |cx| {
        check_unique_rule_ids(&b.lifecycle_rules, span, cx)
    });
}

impl KindInfo for SpacesBucket {
    const DOC: &'static str =
        "A Spaces bucket, managed through the S3 API at the region's Spaces endpoint.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the bucket name"),
        plain("urn", "`do:space:<name>`"),
        plain("region", "the region slug"),
        plain(
            "bucket_domain_name",
            "`<name>.<region>.digitaloceanspaces.com`",
        ),
        plain("endpoint", "`https://<region>.digitaloceanspaces.com`"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("spaces bucket {}", self.name.as_str()))
    }
}

string_enum! {
    /// What a Spaces key may do with a bucket.
    pub enum SpacesPermission {
        /// Read objects.
        Read = "read",
        /// Read and write objects.
        ReadWrite = "readwrite",
        /// Everything on every bucket (with `bucket = ""`).
        FullAccess = "fullaccess",
    }
}

block! {
    /// One grant of a Spaces key.
    pub struct SpacesGrant {
        /// Bucket name; empty for a full-access grant.
        bucket: String = "" => replace,
        /// Permission.
        permission: SpacesPermission => replace,
    }
}

block! {
    /// A Spaces access key, scoped to buckets.
    pub struct SpacesKey {
        /// Name of the key.
        name: String => update,
        /// What the key may do; a full-access key cannot become scoped or back (order does
        /// not matter).
        grants: Set<SpacesGrant> => replace,
    }
    check = check_spaces_key;
}

fn check_spaces_key(k: &SpacesKey, span: Span, cx: &mut Cx<'_>) {
    if k.grants.is_empty() {
        cx.nested("grants", |cx| {
            cx.error(span, "a Spaces key needs at least one grant");
        });
    }
    let full = k
        .grants
        .iter()
        .filter(|g| g.permission == SpacesPermission::FullAccess)
        .count();
    if full > 0 && full != k.grants.len() {
        cx.nested("grants", |cx| {
            cx.error(
                span,
                "a full-access grant cannot be mixed with bucket grants",
            );
        });
    }
    for g in &k.grants {
        if g.permission == SpacesPermission::FullAccess && !g.bucket.is_empty() {
            cx.nested("grants", |cx| {
                cx.error(
                    span,
                    "a `fullaccess` grant applies to every bucket: leave `bucket` empty",
                );
            });
        }
        if g.permission != SpacesPermission::FullAccess && g.bucket.is_empty() {
            cx.nested("grants", |cx| {
                cx.error(span, format!("a `{}` grant needs a `bucket`", g.permission));
            });
        }
    }
}

impl KindInfo for SpacesKey {
    const DOC: &'static str = "A Spaces access key. Its secret is returned once, at creation: reference `secret_key` from where it must be kept (a Secrets Manager secret); it is never written to the ledger.";
    const EXPORTS: &'static [Export] = &[
        plain("access_key", "the access key id"),
        secret(
            "secret_key",
            "the secret key (available in the apply that creates the key)",
        ),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // Nothing unique stops two of these existing side by side for a moment.
        replacement: Replacement::CreateBeforeDestroy,
        unrecoverable: &["secret_key"],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("spaces key {}", self.name))
    }
}

string_enum! {
    /// Environment label of a project.
    pub enum ProjectEnvironment {
        /// Development.
        Development = "Development",
        /// Staging.
        Staging = "Staging",
        /// Production.
        Production = "Production",
    }
}

block! {
    /// A project that groups resources in the control panel.
    pub struct Project {
        /// Project name.
        name: String => update,
        /// Free text.
        description: String = "" => update,
        /// What the project is for.
        purpose: String = "Web Application" => update,
        /// Environment label.
        environment: Option<ProjectEnvironment> => update,
        /// Make it the account's default project.
        is_default: bool = false => update,
        /// URNs of resources to assign, usually references to their `urn` (order does not
        /// matter).
        resources: Set<String> => update,
    }
    check = check_project;
}

fn check_project(p: &Project, span: Span, cx: &mut Cx<'_>) {
    if p.purpose.chars().count() > 255 {
        cx.nested("purpose", |cx| {
            cx.error(span, "is longer than 255 characters");
        });
    }
    for urn in p.resources.iter().filter(|u| !contains_ref(u)) {
        if !urn.starts_with("do:") {
            cx.nested("resources", |cx| {
                cx.error(span, format!("\"{urn}\" is not a URN"))
                    .set_help("write `do:<type>:<id>`, or reference a resource's `urn`");
            });
        }
    }
}

impl KindInfo for Project {
    const DOC: &'static str = "A project. Resources are assigned after they are created; a project that still holds resources cannot be deleted.";
    const EXPORTS: &'static [Export] =
        &[plain("id", "the project's UUID"), plain("name", "the name")];
    const RULES: KindRules = KindRules {
        key: &[exact("name")],
        ignore_case: &[],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("project name {}", self.name))
    }
}
