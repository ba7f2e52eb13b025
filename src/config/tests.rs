//! Configuration resolution: every bad value is refused naming its field.

use super::*;

fn parse(text: &str) -> Result<ServerConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    ServerConfig::resolve(file, ServeOverrides::default()).map_err(|e| e.to_string())
}

#[test]
fn unknown_fields_are_named() {
    let e = parse("lisen = \"1.2.3.4:1\"").unwrap_err();
    assert!(e.contains("lisen"), "{e}");
}

#[test]
fn masking_phone_regions_and_name_keys_are_checked() {
    let file = |toml: &str| toml::from_str::<MaskingFile>(toml).unwrap();
    assert!(check_mask_detector(&file("phone_regions = [\"GB\", \"de\"]")).is_ok());
    let err = check_mask_detector(&file("phone_regions = [\"XX\"]")).unwrap_err();
    assert!(err.to_string().contains("masking.phone_regions"), "{err}");
    assert!(check_mask_detector(&file("phone_regions = []")).is_err());
    assert!(check_mask_detector(&file("name_keys = [\" \"]")).is_err());
}

#[test]
fn bad_values_are_named() {
    assert!(
        parse("listen = \"nowhere\"")
            .unwrap_err()
            .contains("`listen`")
    );
    assert!(
        parse("request_ttl = \"soon\"")
            .unwrap_err()
            .contains("request_ttl")
    );
    let e = parse("[[agents]]\nid = \"a\"\nkeys = [{ env = \"COUNTERSIGN_TEST_UNSET_VAR\" }]")
        .unwrap_err();
    assert!(e.contains("agents[0].keys[0]"), "{e}");
}

#[test]
fn short_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, "too-short\n").unwrap();
    let text = format!("[[agents]]\nid = \"a\"\nkeys = [{{ file = {:?} }}]", path);
    let e = parse(&text).unwrap_err();
    assert!(
        e.contains("agents[0].keys[0]") && e.contains("at least 32"),
        "{e}"
    );
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    let c = parse(&text).unwrap();
    assert_eq!(c.agents[0].keys.len(), 1);
}

#[test]
fn a_reviewer_may_not_share_a_name_with_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let text = format!(
        "[[agents]]\nid = \"deployer\"\nkeys = [{{ file = {:?} }}]\n\n[[reviewers]]\nname = \"deployer\"\ntoken_sha256 = \"{}\"\n",
        key,
        "0".repeat(64)
    );
    let e = parse(&text).unwrap_err();
    assert!(
        e.contains("reviewers[0].name") && e.contains("agent"),
        "{e}"
    );
}

#[test]
fn agent_owners_must_be_users_teams_or_e_mail_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let agent = |owners: &str| {
        format!("[[agents]]\nid = \"deployer\"\nowners = {owners}\nkeys = [{{ file = {key:?} }}]\n")
    };
    let ok = parse(&agent(
        r#"["@alice", "bob", "@ops/oncall", "ops@example.com"]"#,
    ))
    .unwrap();
    assert_eq!(ok.agents[0].owners.len(), 4);
    let e = parse(&agent(r#"["@alice", "@ops/on call"]"#)).unwrap_err();
    assert!(
        e.contains("agents[0].owners[1]")
            && e.contains("`deployer`")
            && e.contains("`@ops/on call`"),
        "{e}"
    );
}

#[test]
fn the_example_configuration_file_is_valid() {
    let file: FileConfig = toml::from_str(include_str!("../../countersign.example.toml"))
        .unwrap_or_else(|e| panic!("countersign.example.toml: {e}"));
    assert!(!file.agents.is_empty() && !file.reviewers.is_empty());
}

#[test]
fn the_example_github_section_is_valid_when_uncommented() {
    let example = include_str!("../../countersign.example.toml");
    let block: String = example
        .lines()
        .skip_while(|l| *l != "# [github]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(block.starts_with("[github]\napp_id"), "{block}");
    let file: FileConfig =
        toml::from_str(&block).unwrap_or_else(|e| panic!("[github] in the example: {e}"));
    let github = file.github.unwrap();
    assert_eq!(github.repository.as_deref(), Some("acme/gitops"));
    assert_eq!(github.webhook_secrets.len(), 2);
}

#[test]
fn a_github_section_is_resolved_and_checked() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/github/test-app-key.pem"
    );
    let text = format!(
        "base_branch = \"trunk\"\n[github]\napp_id = 9\nprivate_key = {{ file = {key:?} }}\nrepository = \"acme/gitops\"\nwebhook_secrets = [{{ env = \"PATH\" }}]\n"
    );
    let c = parse(&text).unwrap();
    let g = c.github.unwrap();
    assert_eq!((g.app_id, g.base_branch.as_str()), (9, "trunk"));
    assert!(parse("").unwrap().github.is_none());
    let e = parse("[github]\napp_id = 9\n").unwrap_err();
    assert!(e.contains("github.private_key"), "{e}");
    let e = parse("[github]\napp_ids = 9\n").unwrap_err();
    assert!(e.contains("app_ids"), "{e}");
}

#[test]
fn token_clients_are_read_and_checked() {
    let ok = format!(
        "[[token_clients]]\nname = \"vault\"\ntoken_sha256 = \"{}\"\n",
        "ab".repeat(32)
    );
    let c = parse(&ok).unwrap();
    assert_eq!(c.token_clients[0].name, "vault");
    assert_eq!(c.token_clients[0].token_sha256, [0xab; 32]);
    let e = parse("[[token_clients]]\nname = \"vault\"\ntoken_sha256 = \"xyz\"\n").unwrap_err();
    assert!(e.contains("token_clients[0].token_sha256"), "{e}");
    let e = parse(&format!("{ok}{ok}")).unwrap_err();
    assert!(e.contains("token_clients[1].name"), "{e}");
}

#[test]
fn defaults_are_the_embedded_mode() {
    let c = parse("").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from(".countersign"));
    assert_eq!(c.request_ttl, Duration::from_secs(86400));
    assert_eq!(c.max_body_bytes, 1 << 20);
}

#[test]
fn a_database_url_must_be_postgres_and_is_never_printed() {
    let c = parse("database_url = \"postgres://app:s3cret@db.internal:5432/countersign\"\nreplica_name = \"replica-1\"").unwrap();
    assert_eq!(
        c.database_url.as_ref().unwrap().expose(),
        "postgres://app:s3cret@db.internal:5432/countersign"
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    let e = parse("database_url = \"mysql://app:s3cret@db/countersign\"").unwrap_err();
    assert!(e.contains("database_url") && !e.contains("s3cret"), "{e}");
    let e = parse("replica_name = \"two words\"").unwrap_err();
    assert!(e.contains("replica_name"), "{e}");
}
