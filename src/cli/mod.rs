//! Command line: argument parsing and one module per subcommand. Printing happens here and
//! nowhere below, and only through [`out!`], [`outln!`] and [`errln!`], which escape
//! control characters in whatever they print (user- and cloud-controlled strings reach
//! every kind of output: keys, names, values in errors, cloud messages).

/// `print!`, with control characters escaped ([`crate::errors::escape_lines`]).
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::write_out(&$crate::errors::escape_lines(&format!($($t)*)))
    };
}

/// `println!`, with control characters escaped.
macro_rules! outln {
    () => {
        $crate::cli::write_out("\n")
    };
    ($($t:tt)*) => {
        $crate::cli::write_out(&format!("{}\n", $crate::errors::escape_lines(&format!($($t)*))))
    };
}

/// `eprintln!`, with control characters escaped.
macro_rules! errln {
    ($($t:tt)*) => {
        eprintln!("{}", $crate::errors::escape_lines(&format!($($t)*)))
    };
}

mod adopt;
mod apply;
mod diff;
mod fmt;
mod init;
mod output;
mod planfile;
mod run;
mod sandbox;
pub mod state;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `0.1.0 (<commit> <commit date>)`, from the build script.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PROVISIONER_COMMIT"),
    " ",
    env!("PROVISIONER_COMMIT_DATE"),
    ")"
);

/// Keeps DigitalOcean, AWS, GitHub and Kubernetes (Flux) equal to a declarative TOML description.
#[derive(Debug, Parser)]
#[command(name = "provisioner", version = VERSION, about, long_about = None)]
pub struct Args {
    /// Folder holding the desired state (`*.toml`, read recursively).
    #[arg(
        short = 'd',
        long = "desired",
        global = true,
        default_value = "desired-state",
        value_name = "DIR"
    )]
    pub desired: PathBuf,

    /// Where the ledger lives: `s3://bucket/prefix` or `file://path`. When neither this nor
    /// PROVISIONER_LEDGER is given: `[settings] ledger` of the desired state, else
    /// `file://state`.
    #[arg(long, global = true, env = "PROVISIONER_LEDGER", value_name = "URL")]
    pub ledger: Option<String>,

    /// The environment to work on: `environments/NAME.toml` gives its variable values and
    /// its ledger (by default the ledger location with `/env/NAME` appended). Required when
    /// the desired state has environments.
    #[arg(
        short = 'e',
        long = "environment",
        global = true,
        env = "PROVISIONER_ENVIRONMENT",
        value_name = "NAME"
    )]
    pub environment: Option<String>,

    /// Set a variable of the root module, `--var region=fra1` (repeatable). Wins over the
    /// environment's file and PROVISIONER_VAR_NAME; a non-string variable reads the value as
    /// TOML (`--var nodes=3`, `--var 'zones=["a", "b"]'`).
    #[arg(long = "var", global = true, value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Log lines on stderr as `text` or `json` (one object per line). The level comes from
    /// RUST_LOG (default: `info` for `run` and non-interactive `apply`, else `warn`).
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Accept a change of the ledger's lineage, once: start a new ledger where the current
    /// one vanished although its history remains, or take on the lineage of a ledger copied
    /// over this one. Without it both are refused (see docs/ledger.md).
    #[arg(long, global = true)]
    pub new_lineage: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Terraform's single-dash `-var NAME=VALUE` (and `-var=NAME=VALUE`), which users of
/// Terraform type by habit, read as `--var`. Only before a `--` (after it, arguments are
/// values).
fn terraform_spellings(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut rest = false;
    args.map(|a| {
        if rest {
            return a;
        }
        match a.to_str() {
            Some("--") => {
                rest = true;
                a
            }
            Some("-var") => "--var".into(),
            Some(s) if s.starts_with("-var=") => format!("-{s}").into(),
            _ => a,
        }
    })
    .collect()
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if crate::desired::refs::is_name(name) => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not NAME=VALUE (a variable's name: letters, digits, `_` and `-`)"
        )),
    }
}

impl Args {
    /// The environment and variable values the command line and the process environment
    /// give.
    pub fn inputs(&self) -> crate::desired::Inputs {
        crate::desired::Inputs::from_process(self.environment.clone(), self.vars.clone())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the desired state and report every problem at once.
    Validate,
    /// Show what apply would change, without changing anything (`-o FILE` saves the plan
    /// for `apply FILE`).
    #[command(visible_alias = "plan")]
    Diff(diff::DiffArgs),
    /// Plan, confirm, and change the clouds to match the desired state.
    Apply(apply::ApplyArgs),
    /// Run as a daemon: reconcile on an interval, serve metrics.
    Run(run::RunArgs),
    /// Print the root module's outputs as the ledger recorded them after the last pass
    /// (`[output.NAME]`); sensitive ones are masked unless named. Exit 3 when a named output
    /// is not known yet.
    Output(output::OutputArgs),
    /// Inspect and repair the ledger.
    State {
        /// What to do with the ledger.
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Ledger schema maintenance.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        command: state::LedgerCommand,
    },
    /// Make what provisioner itself needs (the ledger's bucket or folder, the fingerprint
    /// key secret), idempotently, and check each provider's credentials.
    Init(init::InitArgs),
    /// List what the clouds hold that this ledger does not manage: adoptable (matches a
    /// desired resource by name), unmanaged, or another ledger's. Exit 3 when a kind could
    /// not be scanned.
    Scan(adopt::ScanArgs),
    /// Write TOML for existing objects (one by address and id, or every unmanaged one) and
    /// record them in the ledger once a plan against that TOML shows no change.
    Import(adopt::ImportArgs),
    /// Print a JSON Schema (draft-07) of the desired-state language, for editors (Taplo,
    /// Even Better TOML): completion, hover and inline errors.
    Schema,
    /// Rewrite desired-state files in canonical form (Taplo's formatter; comments kept);
    /// `--check` lists the files that would change and exits 1.
    Fmt(fmt::FmtArgs),
    /// Run the whole loop against local simulators, with no cloud account.
    Sandbox(sandbox::SandboxArgs),
    /// Print a shell completion script (`provisioner completions bash >
    /// /etc/bash_completion.d/provisioner`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, in roff (`provisioner man > provisioner.1; man ./provisioner.1`).
    Man,
    /// Ask a running daemon whether it is healthy (for container health checks, where no
    /// curl is at hand): exit 0 when `/healthz` answers 200, else 1.
    Healthcheck {
        /// The endpoint to ask.
        #[arg(
            long,
            default_value = "http://127.0.0.1:9464/healthz",
            value_name = "URL"
        )]
        url: String,
    },
}

/// Writes command output to stdout. When the reader has gone (a closed pipe), the command
/// ends at once, quietly, with the status a process killed by SIGPIPE has (141), as `cat`
/// and `git` do; any other write error is reported once and ends it with 1.
pub fn write_out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Entry point of the binary: parse the arguments, start the process's one async runtime,
/// run the command on it.
pub fn main() -> ExitCode {
    let args = Args::parse_from(terraform_spellings(std::env::args_os()));
    init_logs(&args);
    if args.new_lineage {
        crate::ledger::store::allow_new_lineage_for_this_process();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Debug builds keep large futures on the stack; release builds need far less.
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(&args))
}

/// Runs the command `args` name.
pub async fn run(args: &Args) -> ExitCode {
    let inputs = args.inputs();
    let inputs = &inputs;
    match &args.command {
        Command::Validate => validate::exec(&args.desired, inputs),
        Command::Diff(a) => diff::exec(&args.desired, inputs, args.ledger.as_deref(), a).await,
        Command::Apply(a) => apply::exec(&args.desired, inputs, args.ledger.as_deref(), a).await,
        Command::Run(a) => run::exec(&args.desired, inputs, args.ledger.as_deref(), a).await,
        Command::Output(a) => match ledger_url(args) {
            Ok(url) => output::exec(&url, inputs.environment.as_deref(), a).await,
            Err(e) => fail(e),
        },
        Command::State { command } => match ledger_url(args) {
            Ok(url) => state::exec_state(&args.desired, inputs, &url, command).await,
            Err(e) => fail(e),
        },
        Command::Ledger { command } => match ledger_url(args) {
            Ok(url) => state::exec_ledger(&url, command).await,
            Err(e) => fail(e),
        },
        Command::Init(a) => match ledger_url(args) {
            Ok(url) => init::exec(&args.desired, inputs, &url, a).await,
            Err(e) => fail(e),
        },
        Command::Scan(a) => match ledger_url(args) {
            Ok(url) => adopt::exec_scan(&args.desired, inputs, &url, a).await,
            Err(e) => fail(e),
        },
        Command::Import(a) => match ledger_url(args) {
            Ok(url) => adopt::exec_import(&args.desired, inputs, &url, a).await,
            Err(e) => fail(e),
        },
        Command::Healthcheck { url } => healthcheck(url).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Args::command(), "provisioner", &mut buf);
            write_out(&String::from_utf8_lossy(&buf));
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            match clap_mangen::Man::new(Args::command()).render(&mut buf) {
                Ok(()) => {
                    write_out(&String::from_utf8_lossy(&buf));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e.into()),
            }
        }
        Command::Sandbox(a) => sandbox::exec(&args.desired, inputs, a).await,
        Command::Schema => {
            match serde_json::to_string_pretty(&crate::desired::json_schema::json_schema()) {
                Ok(text) => {
                    write_out(&format!("{text}\n"));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e.into()),
            }
        }
        Command::Fmt(a) => fmt::exec(&args.desired, a),
    }
}

/// Logs go to stderr, as text or JSON lines, at the level RUST_LOG names.
fn init_logs(args: &Args) {
    use std::io::IsTerminal;
    let chatty = match &args.command {
        Command::Run(_) => true,
        Command::Apply(_) => !std::io::stderr().is_terminal(),
        _ => false,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The AWS SDK's own warnings (the instance metadata service tried and refused when
        // no credentials are set, each with a debug dump) are left out: provisioner says in
        // one line what is missing and what to set. `RUST_LOG` brings them back.
        let level = if chatty { "info" } else { "warn" };
        tracing_subscriber::EnvFilter::new(format!(
            "{level},aws_config=error,aws_smithy_runtime=error,aws_smithy_runtime_api=error"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if args.log_format == "json" {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init();
    }
}

/// The ledger location for commands that do not otherwise need the desired state:
/// `--ledger`/`PROVISIONER_LEDGER`, else `[settings] ledger` from the desired-state folder,
/// else the default, with the environment's part ([`crate::reconcile::ledger_url`]). An
/// unreadable desired state is an error here (guessing the default could show or change the
/// wrong ledger).
fn ledger_url(args: &Args) -> anyhow::Result<String> {
    use crate::reconcile::{DEFAULT_LEDGER, ledger_url};
    if let Some(url) = &args.ledger {
        return Ok(url.clone());
    }
    if !args.desired.exists() {
        if let Some(env) = &args.environment {
            anyhow::bail!(
                "environment `{env}` is chosen, but the desired-state folder {} does not exist to say where its ledger is",
                args.desired.display()
            );
        }
        return Ok(args.ledger.clone().unwrap_or_else(|| DEFAULT_LEDGER.into()));
    }
    match crate::desired::load_with(&args.desired, &args.inputs()) {
        Ok(state) => Ok(ledger_url(None, &state)),
        Err(errors) => anyhow::bail!(
            "{errors}\ncould not read `[settings] ledger` from {}: fix the desired state, or name the ledger with --ledger URL",
            args.desired.display()
        ),
    }
}

async fn healthcheck(url: &str) -> ExitCode {
    let answer = async {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(url)
            .send()
            .await
    }
    .await;
    match answer {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            errln!("unhealthy: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            errln!("unhealthy: {url}: {}", crate::errors::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    print_error(&e);
    ExitCode::FAILURE
}

/// Prints an error with its causes. Validation reports are printed as they are: they
/// already start with `error:` and end with a count.
fn print_error(e: &anyhow::Error) {
    let text = format!("{e:#}");
    if text.starts_with("error:") {
        errln!("{text}");
    } else {
        errln!("error: {text}");
    }
}
