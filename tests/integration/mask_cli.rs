//! `countersign mask` as a user runs it: text and JSON, reports without values, exit codes.

use std::io::Write;
use std::process::{Command, Stdio};

fn mask(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("mask")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn text_is_masked_line_by_line_and_reports_carry_no_values() {
    let token = format!("ghp_{}", "Z9".repeat(18));
    let input = format!(
        "user ann.lee@example.com logged in\npassword=hunter2hunter2\ntoken {token}\nrelease v1.2.3 id 550e8400-e29b-41d4-a716-446655440000\n"
    );
    let (code, out, err) = mask(&[], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4);
    for raw in ["ann.lee@example.com", "hunter2hunter2", token.as_str()] {
        assert!(!out.contains(raw), "{raw} survived: {out}");
    }
    assert!(
        out.contains("v1.2.3") && out.contains("550e8400-e29b-41d4-a716-446655440000"),
        "{out}"
    );
    let (code, report, _) = mask(&["--report"], &input);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "email" && l["line"] == 1 && l["column"] == 6),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "github_token" && l["line"] == 3),
        "{report}"
    );
    assert!(
        !report.contains("hunter2") && !report.contains("ann.lee"),
        "{report}"
    );
}

#[test]
fn json_documents_are_masked_one_per_line() {
    let input = "{\"contact\": {\"email\": \"bob@example.org\"},\n \"apiKey\": \"abc\", \"n\": 3}\n[1, \"x\"]";
    let (code, out, err) = mask(&["--format", "json"], input);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["apiKey"], "********");
    assert_eq!(docs[0]["n"], 3);
    assert!(!out.contains("bob@example.org"));
    let (code, _, err) = mask(&["--format", "json"], "{not json");
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = mask(&["/definitely/not/here"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"));
}

#[test]
fn a_customer_export_loses_its_names_addresses_and_split_card_numbers() {
    let input = concat!(
        "{\"customer_name\": \"Linda Taylor\", \"street\": \"6750 Koskikatu 25 Apt. 864\", ",
        "\"card\": \"5500 0000\\n0000 0004\", \"note\": \"requested by John Smith\"}\n",
        "ship to 1600 Pennsylvania Ave NW, key sk_live_\u{200b}51HxYzAbCdEfGhIjKlMn\n",
    );
    for args in [&[][..], &["--format", "json"][..]] {
        let (code, out, err) = mask(args, input.lines().next().unwrap());
        assert_eq!(code, 0, "{err}");
        for raw in ["Linda Taylor", "Koskikatu", "0000 0004", "John Smith"] {
            assert!(!out.contains(raw), "{args:?}: {raw} survived: {out}");
        }
    }
    let (code, out, err) = mask(&[], input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    for raw in ["Pennsylvania", "51HxYzAbCdEf"] {
        assert!(!out.contains(raw), "{raw} survived: {out}");
    }
}
