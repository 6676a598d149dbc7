//! `provisioner output [NAME] [--json]`: the root module's outputs (`[output.NAME]`) as the
//! ledger recorded them after the last pass, for people and for scripts (Terraform's
//! `terraform output`).
//!
//! Sensitive outputs are masked unless named (`provisioner output NAME`), as Terraform
//! does. An output the ledger could not fill in (it names something not applied yet) is
//! never shown as empty: it is reported as not known, and the command exits 3.

use std::process::ExitCode;

use serde_json::{Map, Value};

/// Arguments of `output`.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// One output: its value alone (a string as it is, without quotes; anything else as
    /// JSON), shown even when sensitive.
    pub name: Option<String>,
    /// JSON: every output as `{ "NAME": { "value": …, "sensitive": false } }` (a sensitive
    /// one without its value), or the named one's value as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `output`: 0 when every output shown is known, 3 when one is not known yet, 1 on
/// error (no ledger, no such output).
pub async fn exec(ledger_url: &str, environment: Option<&str>, args: &OutputArgs) -> ExitCode {
    match output(ledger_url, environment, args).await {
        Ok(code) => code,
        Err(e) => {
            super::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

async fn output(
    ledger_url: &str,
    environment: Option<&str>,
    args: &OutputArgs,
) -> anyhow::Result<ExitCode> {
    let store = super::state::open(ledger_url).await?;
    let Some(snapshot) = store.read().await? else {
        anyhow::bail!(
            "there is no ledger at {ledger_url} yet: outputs are recorded by `provisioner apply` (or the daemon)"
        );
    };
    // Another environment's outputs are never shown as this one's.
    snapshot
        .ledger
        .clone()
        .claim_environment(environment)
        .map_err(anyhow::Error::msg)?;
    let outputs = snapshot.ledger.outputs;
    if let Some(name) = &args.name {
        let Some(entry) = outputs.get(name) else {
            let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
            anyhow::bail!(
                "the ledger at {ledger_url} records no output `{name}` ({}); a new `[output]` is recorded by the next apply",
                if names.is_empty() {
                    "it records none".to_string()
                } else {
                    format!("it records {}", names.join(", "))
                }
            );
        };
        if let Some(why) = entry.get("unknown") {
            errln!(
                "error: output `{name}` is not known: {}",
                why.as_str().unwrap_or("not applied yet")
            );
            return Ok(ExitCode::from(3));
        }
        let value = entry.get("value").cloned().unwrap_or(Value::Null);
        match (&value, args.json) {
            (Value::String(s), false) => outln!("{s}"),
            (v, _) => outln!("{}", serde_json::to_string_pretty(v)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut unknown = 0;
    let mut doc = Map::new();
    for (name, entry) in &outputs {
        let sensitive = entry.get("sensitive").and_then(Value::as_bool) == Some(true);
        let mut shown = Map::new();
        if let Some(why) = entry.get("unknown") {
            unknown += 1;
            shown.insert("unknown".into(), why.clone());
            if !args.json {
                outln!("{name} = (not known: {})", why.as_str().unwrap_or(""));
            }
        } else if sensitive {
            if !args.json {
                outln!("{name} = <sensitive> (shown with `provisioner output {name}`)");
            }
        } else {
            let value = entry.get("value").cloned().unwrap_or(Value::Null);
            if !args.json {
                outln!("{name} = {}", serde_json::to_string(&value)?);
            }
            shown.insert("value".into(), value);
        }
        shown.insert("sensitive".into(), Value::Bool(sensitive));
        doc.insert(name.clone(), Value::Object(shown));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&Value::Object(doc))?);
    } else if outputs.is_empty() {
        outln!(
            "no outputs recorded (declare `[output.NAME]` in the desired state; the next apply records them)"
        );
    }
    if unknown > 0 {
        errln!(
            "error: {unknown} output{} not known yet",
            if unknown == 1 { " is" } else { "s are" }
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
