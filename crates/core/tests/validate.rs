//! Malformed desired states: each case asserts the message and where it points. Valid
//! states load to the expected model. These run through the library and build without any
//! SDK; the cases about exit codes and output hygiene run the binary, in the integration
//! tests' `validate` module.

use std::path::Path;

use provisioner_core::desired::kinds::{Kind, Spec};
use provisioner_core::desired::refs::Address;
use provisioner_core::desired::{self, DesiredState, Mode, ValidationErrors};

mod common;
use common::folder;

fn errors(files: &[(&str, &str)]) -> (ValidationErrors, String) {
    let dir = folder(files);
    match desired::load(dir.path()) {
        Ok(_) => panic!("expected validation to fail for {files:?}"),
        Err(e) => {
            let text = e.to_string();
            (e, text)
        }
    }
}

/// Asserts one problem whose message contains `message` and whose location ends with `at`.
#[track_caller]
fn expect(files: &[(&str, &str)], at: &str, message: &str) -> String {
    let (e, text) = errors(files);
    let hit = e.diagnostics.iter().any(|d| {
        let whole = format!("{}: {}", d.field.clone().unwrap_or_default(), d.message);
        whole.contains(message) && d.location(&e.sources).ends_with(at)
    });
    assert!(hit, "no problem `{message}` at `{at}` in:\n{text}");
    text
}

const VPC: &str = "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\n";

fn cluster(pool: &str) -> String {
    format!(
        "[digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"1.33\"\n\n\
         [digitalocean.kubernetes_cluster.k.node_pools.w]\nsize = \"s-2vcpu-4gb\"\n{pool}"
    )
}

// ---- syntax -------------------------------------------------------------------------------

#[test]
fn an_unclosed_table_header_is_a_syntax_error() {
    expect(
        &[("a.toml", "[digitalocean.vpc.main\nname = \"x\"\n")],
        "a.toml:1:23",
        "invalid TOML",
    );
}

#[test]
fn an_unterminated_string_is_a_syntax_error() {
    expect(
        &[("a.toml", "[settings]\ninterval = \"5m\n")],
        "a.toml:2:15",
        "invalid TOML",
    );
}

#[test]
fn a_key_written_twice_in_one_file_is_a_syntax_error() {
    expect(
        &[("a.toml", &format!("{VPC}name = \"again\"\n"))],
        "a.toml:4:1",
        "duplicate key",
    );
}

#[test]
fn a_syntax_error_in_one_file_does_not_hide_problems_in_another() {
    let (e, _) = errors(&[
        ("a.toml", "[oops\n"),
        ("b.toml", "[digitalocean.vpc.x]\nregion = \"nyc3\"\n"),
    ]);
    assert!(e.diagnostics.len() >= 2, "{e}");
}

// ---- types --------------------------------------------------------------------------------

#[test]
fn a_number_where_a_string_belongs_is_a_type_error() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.vpc.main]\nname = \"prod\"\nregion = 3\n",
        )],
        "a.toml:3:10",
        "expected a string, found an integer",
    );
}

#[test]
fn a_quoted_number_is_a_type_error_with_a_hint() {
    let text = expect(
        &[("a.toml", &cluster("count = \"3\"\n"))],
        "a.toml:8:9",
        "expected an integer, found a string",
    );
    assert!(text.contains("write 3 without quotes"), "{text}");
}

#[test]
fn a_quoted_boolean_is_a_type_error() {
    expect(
        &[(
            "a.toml",
            &format!("{}ha = \"true\"\n", cluster("count = 3\n"))
                .replace("ha = \"true\"\n", "")
                .replace(
                    "version = \"1.33\"\n",
                    "version = \"1.33\"\nha = \"true\"\n",
                ),
        )],
        "a.toml:5:6",
        "expected a boolean",
    );
}

#[test]
fn a_float_where_an_integer_belongs_is_a_type_error() {
    expect(
        &[("a.toml", &cluster("count = 2.5\n"))],
        "a.toml:8:9",
        "expected an integer, found a float",
    );
}

#[test]
fn a_date_where_a_string_belongs_is_a_type_error() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.vpc.main]\nname = 2024-01-01\nregion = \"nyc3\"\n",
        )],
        "a.toml:2:8",
        "found a date-time",
    );
}

#[test]
fn a_resource_that_is_not_a_table_is_an_error() {
    expect(
        &[("a.toml", "[digitalocean.vpc]\nmain = 3\n")],
        "a.toml:2:8",
        "expected a table, found an integer",
    );
}

// ---- unknown names ------------------------------------------------------------------------

#[test]
fn an_unknown_field_suggests_the_closest() {
    let text = expect(
        &[("a.toml", &format!("{VPC}descripton = \"x\"\n"))],
        "a.toml:4:1",
        "unknown field `descripton`",
    );
    assert!(text.contains("did you mean `description`?"), "{text}");
}

#[test]
fn an_unknown_kind_suggests_the_closest() {
    let text = expect(
        &[(
            "a.toml",
            "[digitalocean.kubernetes_clustr.k]\nname = \"k\"\n",
        )],
        "a.toml:1:15",
        "unknown kind `digitalocean.kubernetes_clustr`",
    );
    assert!(
        text.contains("did you mean `digitalocean.kubernetes_cluster`?"),
        "{text}"
    );
}

#[test]
fn an_unknown_provider_suggests_the_closest() {
    let text = expect(
        &[("a.toml", "[digitalocaen.vpc.main]\nname = \"x\"\n")],
        "a.toml:1:2",
        "unknown provider `digitalocaen`",
    );
    assert!(text.contains("did you mean `digitalocean`?"), "{text}");
}

#[test]
fn a_kind_under_the_wrong_provider_names_the_right_one() {
    let text = expect(
        &[("a.toml", "[aws.domain.main]\nname = \"example.com\"\n")],
        "a.toml:1:6",
        "unknown kind `aws.domain`",
    );
    assert!(
        text.contains("did you mean `digitalocean.domain`?"),
        "{text}"
    );
}

#[test]
fn a_kind_written_without_its_provider_explains_addresses() {
    let text = expect(
        &[("a.toml", "[vpc.main]\nname = \"x\"\n")],
        "a.toml:1:2",
        "unknown provider `vpc`",
    );
    assert!(text.contains("[digitalocean.vpc.…]"), "{text}");
}

#[test]
fn an_invalid_resource_name_is_an_error() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.vpc.\"my vpc\"]\nname = \"x\"\nregion = \"nyc3\"\n",
        )],
        "a.toml:1:19",
        "is not a valid resource name",
    );
}

#[test]
fn an_unknown_lifecycle_option_suggests_the_closest() {
    let text = expect(
        &[(
            "a.toml",
            &format!("{VPC}lifecycle = {{ prevent_destory = true }}\n"),
        )],
        "a.toml:4:15",
        "unknown field `prevent_destory`",
    );
    assert!(text.contains("did you mean `prevent_destroy`?"), "{text}");
}

#[test]
fn a_missing_required_field_is_named() {
    expect(
        &[("a.toml", "[digitalocean.vpc.main]\nname = \"prod\"\n")],
        "a.toml:1:19",
        "missing required field `region`",
    );
}

// ---- values -------------------------------------------------------------------------------

#[test]
fn a_region_slug_is_checked_by_shape() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.vpc.main]\nname = \"p\"\nregion = \"New York\"\n",
        )],
        "a.toml:3:10",
        "is not a DigitalOcean region slug",
    );
}

#[test]
fn an_aws_region_is_checked_by_shape() {
    expect(
        &[("a.toml", "[settings.aws]\nregion = \"us_east_1\"\n")],
        "a.toml:2:10",
        "is not an AWS region",
    );
}

#[test]
fn a_size_slug_is_checked_by_shape() {
    expect(
        &[(
            "a.toml",
            &cluster("count = 3\n").replace("s-2vcpu-4gb", "large"),
        )],
        "a.toml:7:8",
        "is not a size slug",
    );
}

#[test]
fn a_kubernetes_version_is_checked_by_shape() {
    expect(
        &[(
            "a.toml",
            &cluster("count = 3\n").replace("\"1.33\"", "\"v1.33\""),
        )],
        "a.toml:4:11",
        "is not a DOKS version",
    );
}

#[test]
fn a_cidr_prefix_longer_than_32_is_rejected() {
    expect(
        &[("a.toml", &format!("{VPC}ip_range = \"10.0.0.0/33\"\n"))],
        "a.toml:4:12",
        "prefix length must be 0 to 32",
    );
}

#[test]
fn a_cidr_with_host_bits_suggests_the_network() {
    let text = expect(
        &[("a.toml", &format!("{VPC}ip_range = \"10.10.1.0/16\"\n"))],
        "a.toml:4:12",
        "has host bits set",
    );
    assert!(text.contains("did you mean \"10.10.0.0/16\"?"), "{text}");
}

#[test]
fn a_public_vpc_range_is_rejected() {
    expect(
        &[("a.toml", &format!("{VPC}ip_range = \"8.8.0.0/16\"\n"))],
        "a.toml:1:19",
        "must be an RFC 1918 IPv4 range",
    );
}

#[test]
fn min_nodes_above_max_nodes_is_rejected() {
    expect(
        &[(
            "a.toml",
            &cluster("count = 3\nauto_scale = true\nmin_nodes = 5\nmax_nodes = 2\n"),
        )],
        "a.toml:6:1",
        "min_nodes (5) is larger than max_nodes (2)",
    );
}

#[test]
fn count_outside_the_autoscaling_range_is_rejected() {
    expect(
        &[(
            "a.toml",
            &cluster("count = 10\nauto_scale = true\nmin_nodes = 1\nmax_nodes = 5\n"),
        )],
        "a.toml:6:1",
        "count (10) must lie between min_nodes (1) and max_nodes (5)",
    );
}

#[test]
fn autoscaling_without_bounds_is_rejected() {
    expect(
        &[("a.toml", &cluster("count = 3\nauto_scale = true\n"))],
        "a.toml:6:1",
        "needs both `min_nodes` and `max_nodes`",
    );
}

#[test]
fn bounds_without_autoscaling_are_rejected() {
    expect(
        &[("a.toml", &cluster("count = 3\nmax_nodes = 5\n"))],
        "a.toml:6:1",
        "only apply when `auto_scale = true`",
    );
}

#[test]
fn a_cluster_without_node_pools_is_rejected() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"latest\"\n",
        )],
        "a.toml:1:34",
        "needs at least one node pool",
    );
}

#[test]
fn an_integer_out_of_its_range_is_rejected() {
    let lb = "[digitalocean.load_balancer.lb]\nname = \"lb\"\nregion = \"nyc3\"\nsize_unit = 101\n\
              forwarding_rules = [{ entry_protocol = \"http\", entry_port = 80, target_protocol = \"http\", target_port = 0 }]\n";
    let text = expect(
        &[("a.toml", lb)],
        "a.toml:4:13",
        "101 is out of range: must be 1 to 100",
    );
    assert!(
        text.contains("0 is out of range: must be 1 to 65535"),
        "{text}"
    );
}

#[test]
fn an_integer_too_large_for_its_type_is_rejected() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"TXT\"\nname = \"@\"\ndata = \"x\"\nflags = 300\n",
        )],
        "a.toml:6:9",
        "300 is out of range: must be 0 to 255",
    );
}

fn firewall(rule: &str) -> String {
    format!(
        "[digitalocean.firewall.f]\nname = \"f\"\n\n[[digitalocean.firewall.f.inbound_rules]]\n{rule}"
    )
}

#[test]
fn a_reversed_port_range_is_rejected() {
    expect(
        &[(
            "a.toml",
            &firewall(
                "protocol = \"tcp\"\nports = \"9000-8000\"\nsources = { addresses = [\"0.0.0.0/0\"] }\n",
            ),
        )],
        "a.toml:6:9",
        "9000 is larger than 8000",
    );
}

#[test]
fn a_tcp_rule_without_ports_is_rejected() {
    expect(
        &[(
            "a.toml",
            &firewall("protocol = \"tcp\"\nsources = { addresses = [\"0.0.0.0/0\"] }\n"),
        )],
        "a.toml:4:1",
        "a tcp rule needs `ports`",
    );
}

#[test]
fn an_icmp_rule_with_ports_is_rejected() {
    expect(
        &[(
            "a.toml",
            &firewall(
                "protocol = \"icmp\"\nports = \"22\"\nsources = { addresses = [\"0.0.0.0/0\"] }\n",
            ),
        )],
        "a.toml:4:1",
        "ICMP rules have no ports",
    );
}

#[test]
fn a_firewall_source_must_be_an_address() {
    expect(
        &[(
            "a.toml",
            &firewall(
                "protocol = \"tcp\"\nports = \"22\"\nsources = { addresses = [\"everyone\"] }\n",
            ),
        )],
        "a.toml:7:26",
        "\"everyone\" is neither an IP address nor a CIDR block",
    );
}

#[test]
fn a_duration_without_a_unit_is_rejected() {
    expect(
        &[("a.toml", "[settings]\ninterval = \"5\"\n")],
        "a.toml:2:12",
        "\"5\" is not a duration",
    );
}

#[test]
fn an_interval_shorter_than_30_seconds_is_rejected() {
    expect(
        &[("a.toml", "[settings]\ninterval = \"10s\"\n")],
        "a.toml:1:1",
        "is too short",
    );
}

#[test]
fn an_enum_value_suggests_the_closest() {
    let text = expect(
        &[("a.toml", "[settings]\nmode = \"enforcing\"\n")],
        "a.toml:2:8",
        "\"enforcing\" is not one of \"enforce\", \"detect\"",
    );
    assert!(text.contains("did you mean \"enforce\"?"), "{text}");
}

#[test]
fn a_domain_with_a_trailing_dot_is_rejected() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.domain.d]\nname = \"example.com.\"\n",
        )],
        "a.toml:2:8",
        "ends with a dot",
    );
}

#[test]
fn an_a_record_must_hold_an_ipv4_address() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"A\"\nname = \"www\"\ndata = \"example.org\"\n",
        )],
        "a.toml:1:29",
        "\"example.org\" is not an IPv4 address",
    );
}

#[test]
fn an_mx_record_needs_a_priority() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"MX\"\nname = \"@\"\ndata = \"mx.example.com\"\n",
        )],
        "a.toml:1:29",
        "MX records need `priority`",
    );
}

#[test]
fn a_repository_must_be_owner_slash_name() {
    expect(
        &[(
            "a.toml",
            "[github.actions_variable.v]\nrepository = \"platform\"\nname = \"X\"\nvalue = \"y\"\n",
        )],
        "a.toml:2:14",
        "is not a repository",
    );
}

#[test]
fn github_reserves_names_starting_with_github() {
    expect(
        &[(
            "a.toml",
            "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"GITHUB_TOKEN\"\nvalue = \"y\"\n",
        )],
        "a.toml:3:8",
        "which GitHub reserves",
    );
}

#[test]
fn a_cors_rule_needs_methods() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.spaces_bucket.b]\nname = \"bucket-a\"\nregion = \"nyc3\"\ncors_rules = [{ allowed_origins = [\"*\"] }]\n",
        )],
        "a.toml:4:15",
        "at least one entry in `allowed_methods`",
    );
}

#[test]
fn a_lifecycle_rule_needs_an_action() {
    expect(
        &[(
            "a.toml",
            "[aws.s3_bucket.b]\nbucket = \"bucket-a\"\nlifecycle_rules = [{ id = \"x\" }]\n",
        )],
        "a.toml:3:20",
        "lifecycle rule \"x\" has no action",
    );
}

#[test]
fn a_full_access_spaces_key_cannot_mix_with_bucket_grants() {
    let key = "[digitalocean.spaces_key.k]\nname = \"k\"\ngrants = [{ permission = \"fullaccess\" }, { bucket = \"b\", permission = \"read\" }]\n";
    expect(
        &[("a.toml", key)],
        "a.toml:1:26",
        "cannot be mixed with bucket grants",
    );
}

#[test]
fn a_mail_from_domain_must_be_a_subdomain() {
    expect(
        &[(
            "a.toml",
            "[aws.ses_domain_identity.m]\ndomain = \"example.com\"\nmail_from_domain = \"bounce.example.org\"\n",
        )],
        "a.toml:1:26",
        "must be a subdomain of \"example.com\"",
    );
}

// ---- references ---------------------------------------------------------------------------

#[test]
fn a_reference_to_an_unknown_resource_suggests_the_closest() {
    let text = expect(
        &[(
            "a.toml",
            &format!(
                "{VPC}\n{}",
                cluster("count = 3\n").replace(
                    "version = \"1.33\"\n",
                    "version = \"1.33\"\nvpc_uuid = \"${digitalocean.vpc.mian.id}\"\n"
                )
            ),
        )],
        "a.toml:9:12",
        "reference to unknown resource `digitalocean.vpc.mian`",
    );
    assert!(
        text.contains("did you mean `digitalocean.vpc.main`?"),
        "{text}"
    );
}

#[test]
fn a_reference_to_an_unknown_attribute_suggests_the_closest() {
    let text = expect(
        &[(
            "a.toml",
            &format!(
                "{VPC}\n{}",
                cluster("count = 3\n").replace(
                    "version = \"1.33\"\n",
                    "version = \"1.33\"\nvpc_uuid = \"${digitalocean.vpc.main.uuid}\"\n"
                )
            ),
        )],
        "a.toml:9:12",
        "`digitalocean.vpc` has no attribute `uuid`",
    );
    assert!(
        text.contains("did you mean `urn`?") || text.contains("exports: id"),
        "{text}"
    );
}

#[test]
fn a_reference_to_an_unknown_kind_is_named() {
    expect(
        &[(
            "a.toml",
            "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"X\"\nvalue = \"${digitalocean.droplet.web.ip}\"\n",
        )],
        "a.toml:4:9",
        "reference to unknown kind `digitalocean.droplet`",
    );
}

#[test]
fn a_secret_output_cannot_flow_into_a_plain_field() {
    let smtp = "[aws.iam_smtp_user.smtp]\nname = \"smtp\"\n\n";
    let text = expect(
        &[(
            "a.toml",
            &format!(
                "{smtp}[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"PW\"\nvalue = \"${{aws.iam_smtp_user.smtp.smtp_password}}\"\n"
            ),
        )],
        "a.toml:7:9",
        "is a secret output and cannot flow into a field that is not secret",
    );
    assert!(text.contains("github.actions_secret.value"), "{text}");
}

#[test]
fn a_list_attribute_must_be_indexed() {
    let ses = "[aws.ses_domain_identity.m]\ndomain = \"example.com\"\n\n";
    let rec = "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"CNAME\"\nname = \"x\"\ndata = \"${aws.ses_domain_identity.m.dkim_tokens}\"\n";
    let text = expect(
        &[("a.toml", &format!("{ses}{rec}"))],
        "a.toml:8:8",
        "`dkim_tokens` of `aws.ses_domain_identity.m` is a list",
    );
    assert!(text.contains("dkim_tokens[0]"), "{text}");
}

#[test]
fn a_malformed_reference_explains_the_syntax() {
    let text = expect(
        &[(
            "a.toml",
            "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"X\"\nvalue = \"${digitalocean.vpc}\"\n",
        )],
        "a.toml:4:9",
        "is not a reference",
    );
    assert!(text.contains("${provider.kind.name.attribute}"), "{text}");
}

#[test]
fn an_unterminated_reference_is_an_error() {
    expect(
        &[(
            "a.toml",
            "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"X\"\nvalue = \"${digitalocean.vpc.main.id\"\n",
        )],
        "a.toml:4:9",
        "unterminated reference",
    );
}

#[test]
fn a_cycle_is_named_in_full_and_in_order() {
    let rec = |name: &str, to: &str| {
        format!(
            "[digitalocean.domain_record.{name}]\ndomain = \"example.com\"\ntype = \"TXT\"\nname = \"{name}\"\ndata = \"${{digitalocean.domain_record.{to}.fqdn}}\"\n\n"
        )
    };
    let text = format!("{}{}{}", rec("a", "b"), rec("b", "c"), rec("c", "a"));
    expect(
        &[("a.toml", &text)],
        "a.toml:1:29",
        "dependency cycle: digitalocean.domain_record.a -> digitalocean.domain_record.b -> digitalocean.domain_record.c -> digitalocean.domain_record.a",
    );
}

#[test]
fn a_resource_referring_to_itself_is_a_cycle() {
    expect(
        &[(
            "a.toml",
            "[digitalocean.domain_record.a]\ndomain = \"example.com\"\ntype = \"TXT\"\nname = \"a\"\ndata = \"${digitalocean.domain_record.a.fqdn}\"\n",
        )],
        "a.toml:1:29",
        "`digitalocean.domain_record.a` refers to itself",
    );
}

#[test]
fn depends_on_must_name_a_resource() {
    let text = expect(
        &[(
            "a.toml",
            &format!("{VPC}depends_on = [\"digitalocean.vpc.mian\"]\n"),
        )],
        "a.toml:4:15",
        "`depends_on` names unknown resource `digitalocean.vpc.mian`",
    );
    assert!(
        text.contains("did you mean `digitalocean.vpc.main`?"),
        "{text}"
    );
}

#[test]
fn ignore_changes_must_name_a_field() {
    let text = expect(
        &[(
            "a.toml",
            &format!(
                "{}\n[digitalocean.kubernetes_cluster.k.lifecycle]\nignore_changes = [\"node_pool.w.count\"]\n",
                cluster("count = 3\n")
            ),
        )],
        "a.toml:11:18",
        "`ignore_changes` names `node_pool.w.count`",
    );
    assert!(text.contains("did you mean `node_pools`?"), "{text}");
}

// ---- duplicates ---------------------------------------------------------------------------

#[test]
fn the_same_address_in_two_files_is_an_error_naming_both() {
    let text = expect(
        &[("a.toml", VPC), ("sub/b.toml", VPC)],
        "b.toml:1:19",
        "`digitalocean.vpc.main` is defined more than once",
    );
    assert!(
        text.contains("first defined at") && text.contains("a.toml:1:19"),
        "{text}"
    );
}

#[test]
fn settings_in_two_files_is_an_error() {
    expect(
        &[
            ("a.toml", "[settings]\nprune = true\n"),
            ("b.toml", "[settings]\nprune = false\n"),
        ],
        "b.toml:1:2",
        "`[settings]` is defined more than once",
    );
}

#[test]
fn two_github_secrets_differing_only_in_case_are_one_secret() {
    let s = |n: &str, name: &str| {
        format!(
            "[github.actions_secret.{n}]\nrepository = \"o/r\"\nname = \"{name}\"\nvalue = {{ env = \"X\" }}\n\n"
        )
    };
    expect(
        &[("a.toml", &format!("{}{}", s("a", "token"), s("b", "TOKEN")))],
        "a.toml:6:24",
        "both describe actions secret TOKEN in o/r",
    );
}

// ---- secrets ------------------------------------------------------------------------------

const CANARY: &str = "canary-7f3a9c-hunter2";

#[test]
fn a_plain_text_secret_is_rejected_without_echoing_it() {
    let file = format!(
        "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"T\"\nvalue = \"{CANARY}\"\n"
    );
    let text = expect(
        &[("a.toml", &file)],
        "a.toml:4:9",
        "must not be written in plain text",
    );
    assert!(
        text.contains("{ env = \"NAME\" }") && text.contains("{ file = \"path\" }"),
        "{text}"
    );
    assert!(
        !text.contains(CANARY),
        "the secret leaked into the error:\n{text}"
    );
}

#[test]
fn secret_fields_never_echo_their_line_whatever_the_error() {
    for value in [
        format!("{{ env = \"{CANARY}\" }}"),
        format!("{{ file = \"\", extra = \"{CANARY}\" }}"),
        format!("[\"{CANARY}\"]"),
        format!("\"prefix-{CANARY}-${{aws.iam_smtp_user.u.smtp_password}}\""),
        format!("{{ generate = {{ length = 32 }}, x = \"{CANARY}\" }}"),
    ] {
        let file = format!(
            "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"T\"\nvalue = {value}\n"
        );
        let (_, text) = errors(&[("a.toml", &file)]);
        assert!(
            !text.contains(CANARY),
            "the secret leaked into the error:\n{text}"
        );
    }
}

#[test]
fn generate_is_refused_where_the_kind_cannot_keep_the_value() {
    let text = expect(
        &[(
            "a.toml",
            "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"T\"\nvalue = { generate = { length = 32 } }\n",
        )],
        "a.toml:4:11",
        "this kind cannot keep a generated value",
    );
    assert!(text.contains("aws.secretsmanager_secret"), "{text}");
}

#[test]
fn a_secret_source_has_exactly_one_form() {
    expect(
        &[(
            "a.toml",
            "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"T\"\nvalue = { env = \"A\", file = \"b\" }\n",
        )],
        "a.toml:4:9",
        "a secret source has exactly one of `env`, `file`; found `env`, `file`",
    );
}

#[test]
fn a_generated_length_is_range_checked() {
    expect(
        &[(
            "a.toml",
            "[aws.secretsmanager_secret.s]\nname = \"a/b\"\nvalue = { generate = { length = 8 } }\n",
        )],
        "a.toml:3:33",
        "8 is out of range: must be 16 to 4096",
    );
}

// ---- files and folders --------------------------------------------------------------------

#[test]
fn an_empty_folder_is_an_error() {
    let dir = folder(&[]);
    let e = desired::load(dir.path()).expect_err("empty folder");
    assert!(e.to_string().contains("no `*.toml` files found"), "{e}");
}

#[test]
fn a_missing_folder_is_an_error() {
    let e = desired::load(Path::new("/nonexistent/desired")).expect_err("missing folder");
    let text = e.to_string();
    assert!(
        text.contains("the desired-state folder does not exist")
            && text.contains("/nonexistent/desired"),
        "{text}"
    );
}

#[test]
fn a_file_where_a_folder_belongs_is_an_error() {
    let dir = folder(&[("a.toml", VPC)]);
    let e = desired::load(&dir.path().join("a.toml")).expect_err("a file");
    assert!(
        e.to_string().contains("must be a folder, not a file"),
        "{e}"
    );
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let dir = folder(&[("a.toml", VPC)]);
    std::os::unix::fs::symlink(dir.path().join("gone.toml"), dir.path().join("b.toml"))
        .expect("symlink");
    let e = desired::load(dir.path()).expect_err("dangling link");
    let text = e.to_string();
    assert!(
        text.contains("b.toml") && text.contains("cannot read file"),
        "{text}"
    );
}

#[test]
fn a_non_utf8_file_is_an_error_with_its_position() {
    let dir = folder(&[]);
    std::fs::write(dir.path().join("a.toml"), b"[settings]\nprune = \"\xff\"\n").expect("write");
    let e = desired::load(dir.path()).expect_err("not UTF-8");
    let text = e.to_string();
    assert!(
        text.contains("a.toml")
            && text.contains("not valid UTF-8: invalid byte at line 2, column 10"),
        "{text}"
    );
}

#[test]
fn a_ten_megabyte_file_is_refused_without_parsing() {
    let dir = folder(&[]);
    let big = format!("# {}\n", "x".repeat(10 * 1024 * 1024));
    std::fs::write(dir.path().join("huge.toml"), big).expect("write");
    let e = desired::load(dir.path()).expect_err("too big");
    let text = e.to_string();
    assert!(
        text.contains("huge.toml") && text.contains("larger than the 8 MiB limit"),
        "{text}"
    );
}

#[test]
fn symbolic_link_cycles_are_named_for_files_and_folders() {
    let dir = folder(&[("a.toml", VPC), ("sub/b.toml", "")]);
    std::os::unix::fs::symlink(dir.path().join("y.toml"), dir.path().join("x.toml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("x.toml"), dir.path().join("y.toml")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/back")).unwrap();
    let e = desired::load(dir.path()).expect_err("cycles");
    let text = e.to_string();
    assert!(
        text.contains("x.toml") && text.contains("cycle of symbolic links"),
        "{text}"
    );
    assert!(
        text.contains("sub/back") && text.contains("a cycle of symbolic links: this folder is"),
        "{text}"
    );
}

#[test]
fn hidden_files_and_other_extensions_are_ignored() {
    let dir = folder(&[
        ("a.toml", VPC),
        (".swap.toml", "garbage ["),
        ("notes.txt", "garbage ["),
        (".git/x.toml", "["),
    ]);
    let state = desired::load(dir.path()).expect("valid");
    assert_eq!(state.resources.len(), 1);
    assert_eq!(state.files, 1);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let file = "[settings]\nmode = \"x\"\ninterval = \"1\"\n\n[digitalocean.vpc.a]\nregion = \"x\"\nbogus = 1\n";
    let (e, _) = errors(&[("a.toml", file)]);
    assert_eq!(e.diagnostics.len(), 5, "{e}");
}

// ---- valid states -------------------------------------------------------------------------

fn worked_example() -> DesiredState {
    desired::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state"),
        &desired::Inputs {
            environment: Some("production".into()),
            ..Default::default()
        },
    )
    .expect("the worked example validates")
}

#[test]
fn a_small_valid_file_loads_to_the_expected_model() {
    let dir = folder(&[(
        "net.toml",
        &format!(
            "{VPC}ip_range = \"10.20.0.0/16\"\n\n[digitalocean.domain.d]\nname = \"example.com\"\n\n[digitalocean.domain_record.www]\ndomain = \"${{digitalocean.domain.d.name}}\"\ntype = \"CNAME\"\nname = \"www\"\ndata = \"example.org\"\n"
        ),
    )]);
    let state = desired::load(dir.path()).expect("valid");
    let vpc = &state.resources[&Address::new("digitalocean", "vpc", "main")];
    let Spec::DoVpc(v) = &vpc.spec else {
        panic!("expected a VPC")
    };
    assert_eq!(v.name, "prod");
    assert_eq!(v.region.as_str(), "nyc3");
    assert_eq!(
        v.ip_range.as_ref().map(|r| r.as_str()),
        Some("10.20.0.0/16")
    );
    assert_eq!(v.description, None);
    let rec = &state.resources[&Address::new("digitalocean", "domain_record", "www")];
    let Spec::DoDomainRecord(r) = &rec.spec else {
        panic!("expected a record")
    };
    assert_eq!(r.ttl, 1800, "the default TTL applies");
    assert_eq!(
        rec.depends_on
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["digitalocean.domain.d"]
    );
    assert_eq!(state.settings.mode, Mode::Enforce);
    assert_eq!(state.settings.interval.seconds(), 300);
    assert!(!state.settings.prune);
}

#[test]
fn the_worked_example_covers_every_kind() {
    let state = worked_example();
    for kind in Kind::ALL {
        assert!(
            state.resources.values().any(|r| r.kind() == *kind),
            "the worked example has no {kind}"
        );
    }
    assert_eq!(state.settings.interval.seconds(), 300);
    assert_eq!(state.settings.concurrency.github, 2);
    assert_eq!(state.settings.concurrency.reads, 24);
}

#[test]
fn the_worked_example_orders_dependencies_first() {
    let state = worked_example();
    let order: Vec<String> = state
        .topological_order()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let pos = |a: &str| {
        order
            .iter()
            .position(|x| x == a)
            .unwrap_or_else(|| panic!("{a} missing"))
    };
    assert_eq!(order.len(), state.resources.len());
    assert!(pos("digitalocean.vpc.prod") < pos("digitalocean.kubernetes_cluster.prod"));
    assert!(
        pos("digitalocean.kubernetes_cluster.prod") < pos("digitalocean.load_balancer.ingress")
    );
    assert!(pos("digitalocean.load_balancer.ingress") < pos("digitalocean.firewall.nodes"));
    assert!(
        pos("module.mail.aws.ses_domain_identity.mail")
            < pos("module.mail.digitalocean.domain_record.dkim_1")
    );
    assert!(pos("aws.iam_smtp_user.smtp") < pos("github.actions_secret.smtp_password"));
    assert!(pos("github.deploy_key.flux") < pos("aws.secretsmanager_secret.flux_deploy_key"));
    for (a, r) in &state.resources {
        for d in &r.depends_on {
            assert!(
                pos(&d.to_string()) < pos(&a.to_string()),
                "{d} must come before {a}"
            );
        }
    }
}

#[test]
fn the_worked_example_lets_the_autoscaler_own_the_pool_size() {
    let state = worked_example();
    let c = &state.resources[&Address::new("digitalocean", "kubernetes_cluster", "prod")];
    assert_eq!(c.lifecycle.ignore_changes, ["node_pools.workers.count"]);
    assert!(c.lifecycle.prevent_destroy);
    let Spec::DoKubernetesCluster(k) = &c.spec else {
        panic!("cluster")
    };
    let pool = &k.node_pools["workers"];
    assert_eq!(
        (pool.count, pool.min_nodes, pool.max_nodes, pool.auto_scale),
        (Some(3), Some(3), Some(6), true)
    );
    assert!(k.ha);
}

// ---- the binary ---------------------------------------------------------------------------
