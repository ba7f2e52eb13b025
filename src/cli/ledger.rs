//! `countersign ledger verify|show|export`: check the audit ledger branch, print one request's
//! timeline, write the evidence for an audit period. Exit codes: 0 fine, 1 broken ledger (or
//! nothing found), 2 unusable input (no repository, no branch, unreadable signers file).

use crate::ledger::export::{self, Period};
use crate::ledger::verify::{self, Report, Trust};
use crate::ledger::{AllowedSigners, DEFAULT_BRANCH};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// The git repository holding the ledger branch.
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_REPO",
        default_value = ".countersign/repo.git",
        value_name = "PATH"
    )]
    pub repo: PathBuf,
    /// The ledger branch.
    #[arg(long, global = true, env = "COUNTERSIGN_LEDGER_BRANCH", default_value = DEFAULT_BRANCH)]
    pub branch: String,
    #[command(subcommand)]
    pub action: LedgerAction,
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Check signatures, append-only history, hashes, the chain and seq continuity (exit 0
    /// intact, 1 broken: the first broken point is named on stderr).
    Verify {
        /// Allowed-signers file obtained out of band [default: the one in the branch's first
        /// commit, trust on first commit].
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
    },
    /// Print a request's timeline (exit 1 if the ledger has no entry for it).
    Show {
        /// Request id (cr_...).
        request_id: String,
        /// Print the raw ledger lines instead.
        #[arg(long)]
        json: bool,
    },
    /// Write the evidence for an audit period: every request received in it, verified first.
    Export {
        /// First day, YYYY-MM-DD (UTC, included).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (UTC, included).
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        /// Allowed-signers file to verify against [default: trust on first commit].
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
    },
}

/// Runs a ledger subcommand; never fails: problems are printed and turned into exit codes.
pub fn run(args: LedgerArgs) -> ExitCode {
    let result = match &args.action {
        LedgerAction::Verify { allowed_signers } => {
            verify_command(&args.repo, &args.branch, allowed_signers.as_deref())
        }
        LedgerAction::Show { request_id, json } => {
            show_command(&args.repo, &args.branch, request_id, *json)
        }
        LedgerAction::Export {
            from,
            to,
            format,
            allowed_signers,
        } => Period::new(from, to).and_then(|period| {
            export_command(
                &args.repo,
                &args.branch,
                allowed_signers.as_deref(),
                period,
                format,
            )
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

fn load_signers(path: Option<&Path>) -> anyhow::Result<Option<AllowedSigners>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read allowed signers {}", path.display()))?;
    let keys = AllowedSigners::parse(&text).with_context(|| format!("{}", path.display()))?;
    anyhow::ensure!(!keys.is_empty(), "{} lists no key", path.display());
    Ok(Some(keys))
}

fn verify_command(repo: &Path, branch: &str, signers: Option<&Path>) -> anyhow::Result<ExitCode> {
    let keys = load_signers(signers)?;
    match verify::verify(repo, branch, keys.as_ref())? {
        Ok(report) => {
            let mut text = format!("{}\n", summary(&report, signers));
            for s in &report.signers {
                let commits = thousands(s.commits as u64);
                text.push_str(&format!("signed by {} ({commits} commits)\n", s.principal));
            }
            for note in &report.notes {
                text.push_str(&format!("note: {note}\n"));
            }
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!("broken: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `ok: 1,234 entries in 12 files, 56 commits; chain head seq 1234 sha256:… (commit abc1234);
/// signatures checked against FILE`.
fn summary(r: &Report, signers: Option<&Path>) -> String {
    let head = match &r.head {
        Some(h) => format!(
            "chain head seq {} {} (commit {})",
            h.seq,
            h.hash,
            &h.commit[..7.min(h.commit.len())]
        ),
        None => format!("no entries yet (commit {})", &r.tip[..7.min(r.tip.len())]),
    };
    let trust = match (&r.trust, signers) {
        (Trust::Given, Some(path)) => format!("signatures checked against {}", path.display()),
        (Trust::Given, None) => "signatures checked against the given keys".to_owned(),
        (Trust::FirstCommit(c), _) => format!(
            "signatures checked against the allowed_signers of the first {c} \
             (trust on first commit: pass --allowed-signers with a copy obtained out of band)"
        ),
    };
    format!(
        "ok: {} entries in {} files, {} commits; {head}; {trust} [{:.2} s]",
        thousands(r.entries),
        thousands(r.files as u64),
        thousands(r.commits as u64),
        r.elapsed.as_secs_f64()
    )
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn show_command(repo: &Path, branch: &str, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let timeline = export::show(repo, branch, id)?;
    for damaged in &timeline.damaged {
        eprintln!("warning: {damaged} (run `countersign ledger verify`)");
    }
    if timeline.entries.is_empty() {
        eprintln!("no ledger entries for {id} on {branch}");
        return Ok(ExitCode::FAILURE);
    }
    let mut text = String::new();
    for shown in &timeline.entries {
        text.push_str(&match json {
            true => shown.raw.clone(),
            false => shown.readable(),
        });
        text.push('\n');
    }
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn export_command(
    repo: &Path,
    branch: &str,
    signers: Option<&Path>,
    period: Period,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let keys = load_signers(signers)?;
    let evidence = match export::export(repo, branch, keys.as_ref(), period)? {
        Ok(evidence) => evidence,
        Err(broken) => {
            eprintln!("refusing to export: the ledger is broken: {broken}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let text = match format {
        "csv" => evidence.to_csv(),
        _ => serde_json::to_string_pretty(&evidence.bundle())? + "\n",
    };
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1234), "1,234");
        assert_eq!(super::thousands(1_000_000), "1,000,000");
    }
}
