//! `provisioner init`: makes what provisioner itself needs, idempotently — the ledger's home
//! (an S3 bucket with versioning, default encryption, public access blocked and a lifecycle
//! for old versions; or a local folder) and the fingerprint key secret — and checks, for
//! each provider the desired state uses, which identity the credentials are and what they
//! may do. `--dry-run` says what it would make and makes nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::desired::{self, DesiredState, Kind};

/// Flags of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Say what would be created or changed, and create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What one step found or did.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    /// Problems that leave provisioner unable to work (exit 3).
    missing: usize,
}

impl Report {
    fn ok(&mut self, what: impl Into<String>) {
        self.lines.push(format!("  ok       {}", what.into()));
    }
    fn made(&mut self, dry: bool, what: impl Into<String>) {
        let verb = if dry { "would do" } else { "done" };
        self.lines.push(format!("  {verb:<8} {}", what.into()));
    }
    fn missing(&mut self, what: impl Into<String>) {
        self.missing += 1;
        self.lines.push(format!("  missing  {}", what.into()));
    }
    fn note(&mut self, what: impl Into<String>) {
        self.lines.push(format!("  note     {}", what.into()));
    }
}

/// Runs `init`: exit 0 when everything provisioner needs exists (or, with `--dry-run`,
/// would after it), 3 when a check found something missing that init cannot make (a
/// credential, a permission), 1 on error.
pub async fn exec(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    args: &InitArgs,
) -> ExitCode {
    match init(dir, inputs, ledger_url, args.dry_run).await {
        Ok(report) => {
            for l in &report.lines {
                outln!("{l}");
            }
            if report.missing > 0 {
                outln!(
                    "\n{} thing{} missing that init cannot make: see `missing` above.",
                    report.missing,
                    if report.missing == 1 { " is" } else { "s are" }
                );
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            super::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

async fn init(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    dry: bool,
) -> anyhow::Result<Report> {
    let desired = desired::load_with(dir, inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut r = Report::default();
    r.lines.push(format!("ledger {ledger_url}"));
    ledger_home(ledger_url, &desired, dry, &mut r).await?;
    r.lines.push("fingerprint key".into());
    fingerprint_key(&desired, dry, &mut r).await?;
    let used: BTreeSet<&str> = desired
        .resources
        .values()
        .map(|res| res.kind().provider())
        .collect();
    if used.contains("digitalocean") {
        r.lines.push("digitalocean".into());
        digitalocean(&desired, &mut r).await;
    }
    if used.contains("github") {
        r.lines.push("github".into());
        github(&desired, &mut r).await;
    }
    if used.contains("aws") {
        r.lines.push("aws".into());
        aws(&desired, &mut r).await;
    }
    Ok(r)
}

/// The S3 configuration for provisioner's own needs (the ledger bucket, the key secret):
/// the standard chain, with `[settings.aws] region` when set.
async fn aws_config(desired: &DesiredState) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &desired.settings.aws.region {
        loader = loader.region(aws_config::Region::new(region.as_str().to_string()));
    }
    loader.load().await
}

async fn ledger_home(
    url: &str,
    desired: &DesiredState,
    dry: bool,
    r: &mut Report,
) -> anyhow::Result<()> {
    if let Some(path) = url.strip_prefix("file://") {
        let p = Path::new(path);
        if p.is_dir() {
            r.ok(format!("folder {path} exists"));
        } else if p.exists() {
            anyhow::bail!("{path} exists and is not a folder: the ledger needs a folder");
        } else {
            if !dry {
                std::fs::create_dir_all(p).with_context(|| format!("creating {path}"))?;
            }
            r.made(dry, format!("created folder {path}"));
        }
        if dry && !p.exists() {
            r.made(dry, "created an empty ledger");
            return Ok(());
        }
        ledger_document(url, dry, r).await?;
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        anyhow::bail!("{url}: the ledger is `s3://bucket/prefix` or `file://path`");
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    if bucket.is_empty() {
        anyhow::bail!("{url}: `s3://` needs a bucket, e.g. `s3://my-ledger/prod`");
    }
    let config = aws_config(desired).await;
    let region = config
        .region()
        .map(|x| x.to_string())
        .context("no AWS region: set AWS_REGION or `[settings.aws] region`")?;
    let path_style = config
        .endpoint_url()
        .is_some_and(crate::ledger::store::needs_path_style);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build(),
    );
    let mut created = false;
    crate::providers::aws::s3::ensure_ledger_bucket(
        &s3,
        bucket,
        &region,
        dry,
        &mut |done, line| {
            created |= done == Some(true) && line.starts_with("created bucket");
            match done {
                Some(true) => r.made(dry, line),
                Some(false) => r.ok(line),
                None => r.note(line),
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("bucket {bucket}: {e}"))?;
    if dry && created {
        r.made(
            dry,
            "created an empty ledger, its lineage tagged on the bucket",
        );
        return Ok(());
    }
    let Some(lineage) = ledger_document(url, dry, r).await? else {
        return Ok(());
    };
    // The bucket carries the ledger's lineage, so a desired `aws.s3_bucket` that describes
    // the ledger's own bucket adopts it with proof.
    let tagged = crate::providers::aws::s3::ensure_tag(
        &s3,
        bucket,
        crate::providers::aws::LINEAGE_KEY,
        &lineage,
        dry,
    )
    .await
    .map_err(|e| anyhow::anyhow!("bucket {bucket}: {e}"))?;
    match tagged {
        true => r.made(
            dry,
            format!("tagged the bucket with this ledger's lineage {lineage}"),
        ),
        false => r.ok("the bucket carries this ledger's lineage"),
    }
    Ok(())
}

/// Makes sure the ledger document exists (an empty one with a new lineage), so everything
/// made from now on can carry its lineage. Returns the lineage (`None` in a dry run that
/// would create it).
async fn ledger_document(url: &str, dry: bool, r: &mut Report) -> anyhow::Result<Option<String>> {
    let store = super::state::open(url).await?;
    if let Some(s) = store.read().await? {
        r.ok(format!(
            "ledger exists (lineage {}, serial {})",
            s.ledger.lineage, s.ledger.serial
        ));
        return Ok(Some(s.ledger.lineage));
    }
    if dry {
        r.made(dry, "created an empty ledger");
        return Ok(None);
    }
    let written = store
        .write(crate::ledger::Ledger::create(), None, "provisioner init")
        .await?;
    r.made(
        dry,
        format!(
            "created an empty ledger (lineage {})",
            written.ledger.lineage
        ),
    );
    Ok(Some(written.ledger.lineage))
}

async fn fingerprint_key(desired: &DesiredState, dry: bool, r: &mut Report) -> anyhow::Result<()> {
    use crate::ledger::fingerprint::KEY_ENV;
    if std::env::var_os(KEY_ENV).is_some() {
        r.ok(format!(
            "{KEY_ENV} is set (it takes precedence over a secret)"
        ));
        return Ok(());
    }
    let Some(name) = desired
        .settings
        .fingerprint_key_secret
        .as_ref()
        .map(|s| s.0.clone())
    else {
        if desired::secrets::readable(desired).is_empty() {
            r.ok("no secret value is read from a file or the environment: no key needed");
        } else {
            r.missing(format!(
                "changed secret values can only be noticed with a key: set `[settings] fingerprint_key_secret = \"provisioner/fingerprint-key\"` and run init again (it makes the secret), or set {KEY_ENV}"
            ));
        }
        return Ok(());
    };
    let config = aws_config(desired).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    match sm.describe_secret().secret_id(&name).send().await {
        Ok(_) => r.ok(format!("Secrets Manager secret `{name}` exists")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            if !dry {
                use crypto_box::aead::rand_core::RngCore;
                let mut bytes = [0u8; 32];
                crypto_box::aead::OsRng.fill_bytes(&mut bytes);
                let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                sm.create_secret()
                    .name(&name)
                    .description("provisioner: the key of the ledger's secret fingerprints (HMAC-SHA256); made by `provisioner init`")
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("creating Secrets Manager secret `{name}`: {}", crate::errors::chain(&e))
                    })?;
            }
            r.made(
                dry,
                format!("created Secrets Manager secret `{name}` (32 random bytes; never printed)"),
            );
        }
        Err(e) => r.missing(format!(
            "Secrets Manager secret `{name}` could not be read: {}",
            crate::errors::chain(&e)
        )),
    }
    Ok(())
}

/// The list endpoint of each DigitalOcean kind, with the read scope DigitalOcean's
/// description names for it (`Requires `vpc:read` scope`).
const DO_READS: &[(Kind, &str, &str)] = &[
    (Kind::DoVpc, "/v2/vpcs?per_page=1", "vpc:read"),
    (
        Kind::DoKubernetesCluster,
        "/v2/kubernetes/clusters?per_page=1",
        "kubernetes:read",
    ),
    (
        Kind::DoLoadBalancer,
        "/v2/load_balancers?per_page=1",
        "load_balancer:read",
    ),
    (
        Kind::DoFirewall,
        "/v2/firewalls?per_page=1",
        "firewall:read",
    ),
    (Kind::DoDomain, "/v2/domains?per_page=1", "domain:read"),
    (
        Kind::DoCdnEndpoint,
        "/v2/cdn/endpoints?per_page=1",
        "cdn:read",
    ),
    (
        Kind::DoSpacesKey,
        "/v2/spaces/keys?per_page=1",
        "spaces_key:read",
    ),
    (Kind::DoProject, "/v2/projects?per_page=1", "project:read"),
];

async fn digitalocean(desired: &DesiredState, r: &mut Report) {
    use super::super::providers::digitalocean::{ApiConfig, DoClient};
    let client = match ApiConfig::from_env(desired.settings.rate_limits.digitalocean_per_minute)
        .and_then(DoClient::new)
    {
        Ok(c) => c,
        Err(why) => return r.missing(why),
    };
    match client.request(http::Method::GET, "/v2/account", None).await {
        Ok(reply) => {
            let a = &reply.body["account"];
            let team = a["team"]["name"]
                .as_str()
                .map(|t| format!(", team {t}"))
                .unwrap_or_default();
            r.ok(format!(
                "token of {} ({}{team}), account status {}",
                a["email"].as_str().unwrap_or("?"),
                a["uuid"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            ));
        }
        Err(e) => return r.missing(format!("the token was refused: {e}")),
    }
    let kinds: BTreeSet<Kind> = desired.resources.values().map(|x| x.kind()).collect();
    for (kind, path, scope) in DO_READS.iter().filter(|(k, _, _)| {
        kinds.contains(k) || (*k == Kind::DoDomain && kinds.contains(&Kind::DoDomainRecord))
    }) {
        match client.request(http::Method::GET, path, None).await {
            Ok(_) => r.ok(format!("{kind}: can read")),
            Err(e) => r.missing(format!("{kind}: cannot read ({e}); a custom-scoped token needs `{scope}` and the matching `:create`/`:update`/`:delete` scopes")),
        }
    }
    r.note("write scopes are checked by the first apply: DigitalOcean has no call that lists a token's scopes");
}

async fn github(desired: &DesiredState, r: &mut Report) {
    use super::super::providers::github::{GhApiConfig, GhClient};
    let client = match GhApiConfig::from_env().and_then(GhClient::new) {
        Ok(c) => c,
        Err(why) => return r.missing(why),
    };
    match client.get("/user").await {
        Ok(a) => r.ok(format!(
            "token of {}",
            a.body["login"].as_str().unwrap_or("?")
        )),
        // App installation tokens cannot read `/user`; the repositories below still tell.
        Err(e) => r.note(format!("the token's user could not be read ({e})")),
    }
    let mut repos: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    for res in desired
        .resources
        .values()
        .filter(|x| x.kind().provider() == "github")
    {
        let Some(repo) = res.spec_json["repository"].as_str() else {
            continue;
        };
        let env = res.spec_json["environment"].as_str().map(str::to_string);
        repos.insert((repo.to_string(), None));
        if let Some(env) = env {
            repos.insert((repo.to_string(), Some(env)));
        }
    }
    for (repo, env) in repos {
        let path = match &env {
            None => format!("/repos/{repo}/actions/secrets/public-key"),
            Some(e) => format!(
                "/repos/{repo}/environments/{}/secrets/public-key",
                provisioner_core::percent::percent_encode(e)
            ),
        };
        let what = match &env {
            None => repo.clone(),
            Some(e) => format!("{repo} environment {e}"),
        };
        match client.get(&path).await {
            Ok(_) => r.ok(format!("{what}: can read and write secrets")),
            Err(e) if e.is_not_found() => r.missing(format!(
                "{what}: not found, or not visible to this token (GitHub answers 404 for both); a fine-grained token needs the repository selected with `Secrets`, `Variables`, `Environments` and `Administration` (deploy keys) permissions"
            )),
            Err(e) => r.missing(format!("{what}: {e}")),
        }
    }
}

/// IAM actions each AWS kind needs, for the policy simulation.
fn aws_actions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::AwsS3Bucket => &[
            "s3:ListAllMyBuckets",
            "s3:CreateBucket",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
            "s3:PutBucketTagging",
            "s3:DeleteBucket",
        ],
        Kind::AwsSnsTopic => &[
            "sns:ListTopics",
            "sns:CreateTopic",
            "sns:TagResource",
            "sns:DeleteTopic",
        ],
        Kind::AwsSesDomainIdentity => &[
            "ses:ListEmailIdentities",
            "ses:CreateEmailIdentity",
            "ses:PutEmailIdentityMailFromAttributes",
            "ses:DeleteEmailIdentity",
        ],
        Kind::AwsSesConfigurationSet => &[
            "ses:ListConfigurationSets",
            "ses:CreateConfigurationSet",
            "ses:CreateConfigurationSetEventDestination",
            "ses:DeleteConfigurationSet",
        ],
        Kind::AwsIamSmtpUser => &[
            "iam:ListUsers",
            "iam:CreateUser",
            "iam:PutUserPolicy",
            "iam:CreateAccessKey",
            "iam:DeleteAccessKey",
            "iam:DeleteUser",
        ],
        Kind::AwsSecretsmanagerSecret => &[
            "secretsmanager:ListSecrets",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DeleteSecret",
        ],
        _ => &[],
    }
}

async fn aws(desired: &DesiredState, r: &mut Report) {
    let config = aws_config(desired).await;
    if config.region().is_none() {
        return r.missing("no AWS region: set AWS_REGION or `[settings.aws] region`");
    }
    let sts = aws_sdk_sts::Client::new(&config);
    let arn = match sts.get_caller_identity().send().await {
        Ok(out) => {
            let arn = out.arn().unwrap_or("?").to_string();
            r.ok(format!(
                "credentials of {arn} (account {})",
                out.account().unwrap_or("?")
            ));
            arn
        }
        Err(e) => {
            return r.missing(format!(
                "no usable AWS credentials: {} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role)",
                crate::errors::chain(&e)
            ));
        }
    };
    let kinds: BTreeSet<Kind> = desired.resources.values().map(|x| x.kind()).collect();
    let actions: Vec<&str> = kinds
        .iter()
        .flat_map(|k| aws_actions(*k).iter().copied())
        .collect();
    let iam = aws_sdk_iam::Client::new(&config);
    // An assumed role's session ARN is not a principal IAM can simulate; its role is.
    let principal = principal_arn(&arn);
    match iam
        .simulate_principal_policy()
        .policy_source_arn(&principal)
        .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
        .send()
        .await
    {
        Ok(out) => {
            let denied: Vec<String> = out
                .evaluation_results()
                .iter()
                .filter(|e| e.eval_decision().as_str() != "allowed")
                .map(|e| e.eval_action_name().to_string())
                .collect();
            if denied.is_empty() {
                r.ok(format!(
                    "the policy simulation allows all {} actions the desired state needs",
                    actions.len()
                ));
            } else {
                r.missing(format!(
                    "the policy simulation denies: {}",
                    denied.join(", ")
                ));
            }
        }
        Err(e) => {
            use aws_sdk_iam::error::ProvideErrorMetadata;
            let why = match e.as_service_error() {
                Some(s) => format!(
                    "{}: {}",
                    s.code().unwrap_or("error"),
                    s.message().unwrap_or("no message")
                ),
                None => crate::errors::chain(&e),
            };
            r.note(format!(
                "the permissions could not be simulated ({why}): the first plan and apply will tell"
            ))
        }
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` → `arn:aws:iam::ACCOUNT:role/ROLE`;
/// other ARNs unchanged.
fn principal_arn(arn: &str) -> String {
    let parts: Vec<&str> = arn.split(':').collect();
    if let [p, partition, "sts", _, account, resource] = parts.as_slice()
        && let Some(rest) = resource.strip_prefix("assumed-role/")
    {
        let role = rest.split('/').next().unwrap_or(rest);
        return format!("{p}:{partition}:iam::{account}:role/{role}");
    }
    arn.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_assumed_role_is_simulated_as_its_role() {
        assert_eq!(
            super::principal_arn("arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7"),
            "arn:aws:iam::123456789012:role/deployer"
        );
        assert_eq!(
            super::principal_arn("arn:aws:iam::123456789012:user/ops"),
            "arn:aws:iam::123456789012:user/ops"
        );
    }
}
