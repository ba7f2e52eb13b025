//! `countersign ledger show|export`: one request's timeline, and the evidence bundle for an
//! audit period (one record per request received in it: requester, approvers, policy commit,
//! credential id, final state, outcome), exported only from a ledger that verifies.

use super::entry::{self, Checked};
use super::git::Head;
use super::sign::AllowedSigners;
use super::verify::{self, Broken, Report};
use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One entry of a request's timeline.
#[derive(Debug, Clone)]
pub struct Shown {
    pub path: String,
    pub line: usize,
    /// The line as written (canonical JSON).
    pub raw: String,
    pub entry: Checked,
}

impl Shown {
    /// `timestamp  event  actor  sentence`.
    pub fn readable(&self) -> String {
        let actor = self.entry.entry.get("actor").and_then(Value::as_str);
        format!(
            "{}  {:<18} {:<14} {}",
            self.entry.timestamp,
            self.entry.event,
            actor.unwrap_or(""),
            entry::sentence(&self.entry.entry)
        )
    }
}

/// A request's entries in order, plus the lines that mention it but do not check on their own
/// (`path:line: problem`); the chain is not verified (`ledger verify` does that).
#[derive(Debug, Default)]
pub struct Timeline {
    pub entries: Vec<Shown>,
    pub damaged: Vec<String>,
}

/// The timeline of `request_id` on `branch`.
pub fn show(repo: &Path, branch: &str, request_id: &str) -> anyhow::Result<Timeline> {
    let needle = format!("\"request_id\":{}", Value::from(request_id));
    let mut timeline = Timeline::default();
    verify::for_each_line(repo, branch, &mut |path, line, bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(());
        };
        if !text.contains(&needle) {
            return Ok(());
        }
        match entry::check_line(text) {
            Ok(c) if c.request_id == request_id => timeline.entries.push(Shown {
                path: path.to_owned(),
                line,
                raw: text.to_owned(),
                entry: c,
            }),
            Ok(_) => {}
            Err(e) => timeline.damaged.push(format!("{path}:{line}: {e}")),
        }
        Ok(())
    })?;
    Ok(timeline)
}

/// An audit period: whole UTC days, both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from: String,
    pub to: String,
}

impl Period {
    /// From two `YYYY-MM-DD` dates.
    pub fn new(from: &str, to: &str) -> anyhow::Result<Period> {
        for (flag, day) in [("--from", from), ("--to", to)] {
            let shape = day.len() == 10
                && day.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !shape || humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).is_err() {
                anyhow::bail!("{flag} {day:?} is not a date (YYYY-MM-DD)");
            }
        }
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
        Ok(Period {
            from: from.to_owned(),
            to: to.to_owned(),
        })
    }

    fn contains(&self, timestamp: &str) -> bool {
        let day = timestamp.get(..10).unwrap_or("");
        self.from.as_str() <= day && day <= self.to.as_str()
    }
}

/// What happened to one request (or one refusal at intake).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Record {
    pub request_id: String,
    pub agent: String,
    pub action: String,
    pub resource: String,
    pub environment: String,
    pub received_at: String,
    /// pending, approved, denied, expired, cancelled, refused, or the outcome's status.
    pub state: String,
    pub approvers: Vec<String>,
    pub policy_commit: String,
    pub risk: String,
    pub credential_jti: String,
    pub outcome: String,
    /// Why it was denied or refused.
    pub reason: String,
    #[serde(skip)]
    recorded: Vec<String>,
    #[serde(skip)]
    approved_by: Option<Vec<String>>,
}

const COLUMNS: [&str; 13] = [
    "request_id",
    "agent",
    "action",
    "resource",
    "environment",
    "received_at",
    "state",
    "approvers",
    "policy_commit",
    "risk",
    "credential_jti",
    "outcome",
    "reason",
];

/// The evidence for a period, and the verification it rests on.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub period: Period,
    pub verified: Report,
    pub summary: BTreeMap<String, u64>,
    pub requests: Vec<Record>,
}

/// Verifies the ledger, then gathers the records of the requests received in `period`.
pub fn export(
    repo: &Path,
    branch: &str,
    allowed: Option<&AllowedSigners>,
    period: Period,
) -> anyhow::Result<Result<Evidence, Broken>> {
    let report = match verify::verify(repo, branch, allowed)? {
        Ok(report) => report,
        Err(broken) => return Ok(Err(broken)),
    };
    let mut requests: Vec<Record> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    // Read the commit that was verified, even if the branch moved since.
    verify::for_each_line(repo, &report.tip, &mut |path, line, bytes| {
        let entry: Map<String, Value> = serde_json::from_slice(bytes)
            .with_context(|| format!("{path}:{line} is not a JSON object"))?;
        gather(&entry, &period, &mut requests, &mut open);
        Ok(())
    })?;
    for r in &mut requests {
        if let Some(approvers) = r.approved_by.take() {
            r.approvers = approvers;
        } else {
            r.approvers = std::mem::take(&mut r.recorded);
        }
    }
    let mut summary: BTreeMap<String, u64> = ["approved", "denied", "expired", "cancelled"]
        .into_iter()
        .chain(["pending", "refused"])
        .map(|s| (s.to_owned(), 0))
        .collect();
    for r in &requests {
        *summary.entry(r.state.clone()).or_default() += 1;
    }
    Ok(Ok(Evidence {
        period,
        verified: report,
        summary,
        requests,
    }))
}

fn text(entry: &Map<String, Value>, key: &str) -> String {
    entry
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn names(value: Option<&Value>) -> Option<Vec<String>> {
    let list = value?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// Folds one entry into the records.
fn gather(
    entry: &Map<String, Value>,
    period: &Period,
    requests: &mut Vec<Record>,
    open: &mut HashMap<String, usize>,
) {
    let s = |key: &str| text(entry, key);
    let (id, event) = (s("request_id"), s("event"));
    let new_record = |state: &str, agent: String| Record {
        request_id: id.clone(),
        agent,
        action: s("action"),
        resource: s("resource"),
        environment: s("environment"),
        received_at: s("timestamp"),
        state: state.to_owned(),
        ..Record::default()
    };
    match event.as_str() {
        "received" if period.contains(&s("timestamp")) && !open.contains_key(&id) => {
            let agent = Some(s("agent"))
                .filter(|a| !a.is_empty())
                .unwrap_or(s("actor"));
            open.insert(id.clone(), requests.len());
            requests.push(new_record("pending", agent));
        }
        "intake_refused" if period.contains(&s("timestamp")) => {
            let agent = Some(s("agent"))
                .filter(|a| !a.is_empty())
                .unwrap_or(s("actor"));
            let mut record = new_record("refused", agent);
            record.reason = s("reason");
            requests.push(record);
        }
        _ => {
            let Some(r) = open.get(&id).map(|i| &mut requests[*i]) else {
                return;
            };
            let policy = s("policy_commit");
            if !policy.is_empty() {
                r.policy_commit = policy;
            }
            match event.as_str() {
                "policy_decision" => r.risk = s("risk"),
                "approval_recorded" => {
                    let actor = s("actor");
                    if !r.recorded.contains(&actor) {
                        r.recorded.push(actor);
                    }
                }
                "approved" => {
                    r.state = event;
                    r.approved_by = names(entry.get("approvers"));
                }
                "denied" => {
                    r.state = event;
                    r.reason = s("reason");
                }
                "expired" | "cancelled" | "outcome_unknown" => r.state = event,
                "credential_issued" => r.credential_jti = s("jti"),
                "outcome" => {
                    r.outcome = s("status");
                    r.state = Some(r.outcome.clone())
                        .filter(|o| !o.is_empty())
                        .unwrap_or(event);
                }
                _ => {}
            }
        }
    }
}

impl Evidence {
    fn head_json(&self) -> Value {
        match &self.verified.head {
            Some(Head { seq, hash, commit }) => json!({"seq": seq, "hash": hash, "commit": commit}),
            None => json!({"seq": 0, "hash": entry::GENESIS, "commit": self.verified.tip}),
        }
    }

    /// The bundle in this order: `period`, `chain_head`, `verified`, `summary` (`requests`
    /// first, then a count per state), `requests`.
    pub fn bundle(&self) -> impl Serialize + '_ {
        #[derive(Serialize)]
        struct Summary<'a> {
            requests: usize,
            #[serde(flatten)]
            states: &'a BTreeMap<String, u64>,
        }
        #[derive(Serialize)]
        struct Bundle<'a> {
            period: Value,
            chain_head: Value,
            verified: Value,
            summary: Summary<'a>,
            requests: &'a [Record],
        }
        let trust = match &self.verified.trust {
            verify::Trust::Given => "allowed signers given".to_owned(),
            verify::Trust::FirstCommit(c) => format!("trust on first commit {}", c.id),
        };
        Bundle {
            period: json!({"from": self.period.from, "to": self.period.to, "timezone": "UTC"}),
            chain_head: self.head_json(),
            verified: json!({
                "entries": self.verified.entries,
                "commits": self.verified.commits,
                "signatures": trust,
            }),
            summary: Summary {
                requests: self.requests.len(),
                states: &self.summary,
            },
            requests: &self.requests,
        }
    }

    /// The bundle as a JSON value (keys sorted).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.bundle()).unwrap_or_default()
    }

    /// A header row, one row per record, and a `# summary` line naming the chain head.
    pub fn to_csv(&self) -> String {
        let mut out = COLUMNS.join(",");
        out.push('\n');
        for r in &self.requests {
            let approvers = r.approvers.join(" ");
            let cells = [
                &r.request_id,
                &r.agent,
                &r.action,
                &r.resource,
                &r.environment,
                &r.received_at,
                &r.state,
                &approvers,
                &r.policy_commit,
                &r.risk,
                &r.credential_jti,
                &r.outcome,
                &r.reason,
            ];
            let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
        let counts: Vec<String> = (self.summary.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(state, n)| format!("{state} {n}"))
            .collect();
        let head = self.head_json();
        out.push_str(&format!(
            "# summary: {} to {} (UTC): {} requests ({}); chain head seq {} {} at commit {}\n",
            self.period.from,
            self.period.to,
            self.requests.len(),
            counts.join(", "),
            head["seq"],
            head["hash"].as_str().unwrap_or_default(),
            head["commit"].as_str().unwrap_or_default(),
        ));
        out
    }
}

/// RFC 4180 quoting when needed. A cell a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`: reasons and resource
/// names come from agents and reviewers.
fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_days() {
        let p = Period::new("2026-11-01", "2026-11-30").unwrap();
        assert!(p.contains("2026-11-01T00:00:00.000Z"));
        assert!(p.contains("2026-11-30T23:59:59.999Z"));
        assert!(!p.contains("2026-12-01T00:00:00.000Z"));
        assert!(!p.contains("2026-10-31T23:59:59.999Z"));
        assert!(Period::new("2026-11-31", "2026-12-01").is_err());
        assert!(Period::new("2026-11-02", "2026-11-01").is_err());
        assert!(Period::new("26-11-02", "2026-11-03").is_err());
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
    }
}
