//! Tests of the detector core: positives with exact spans and masks, decoys, overlaps, hint
//! normalisation, and generated inputs.

use super::*;

// Test tokens are assembled at run time so that no real-looking secret sits in the source.
fn aws_key() -> String {
    format!("{}{}", "AKIA", "Z3XQ7PLM2KD8RT4W")
}
fn aws_secret() -> String {
    format!("{}{}", "AbCdEfGhIjKlMnOpQrSt/+", "u".repeat(18))
}
fn github_token() -> String {
    format!("ghp_{}", "a1B2".repeat(9))
}
fn github_pat() -> String {
    format!("github_pat_{}", "11AbCdEfGh_".repeat(3))
}
fn slack_token() -> String {
    format!("xoxb-{}-{}", "123456789012", "abcdefABCDEF")
}
fn slack_webhook() -> String {
    format!(
        "https://hooks.slack.com/services/{}/{}/{}",
        "T0000AAAA", "B1111BBBB", "abcdefghijklmnopqrstuvwx"
    )
}
fn stripe_key() -> String {
    format!("sk_{}_{}", "live", "a9".repeat(12))
}
fn google_key() -> String {
    format!("AIza{}", "b-C_d".repeat(7))
}
fn jwt() -> String {
    format!(
        "eyJ{}.eyJ{}.{}",
        "hbGciOiJIUzI1NiJ9", "zdWIiOiIxMjM0In0", "c2lnbmF0dXJl_-123"
    )
}
fn pem() -> String {
    format!(
        "-----BEGIN RSA {}-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA {}-----",
        "PRIVATE KEY", "PRIVATE KEY"
    )
}
fn stars(n: usize) -> String {
    "*".repeat(n)
}

/// Finds `raw` in `text` and checks that `find` reports exactly `expected`, each as
/// `(kind, raw value, mask)`, with the exact span of the raw value.
#[track_caller]
fn check(text: &str, expected: &[(Kind, &str, &str)]) {
    let detector = Detector::default();
    let findings = detector.find(text);
    let got: Vec<(Kind, &str)> = findings
        .iter()
        .map(|f| (f.kind, &text[f.start..f.end]))
        .collect();
    let want: Vec<(Kind, &str)> = expected.iter().map(|(k, raw, _)| (*k, *raw)).collect();
    assert_eq!(got, want, "findings in {text:?}");
    let mut from = 0;
    for (f, (_, raw, masked)) in findings.iter().zip(expected) {
        let at = from + text[from..].find(raw).expect("raw value is in the text");
        assert_eq!((f.start, f.end), (at, at + raw.len()), "span of {raw:?}");
        assert_eq!(mask(f.kind, raw), *masked, "mask of {raw:?}");
        from = f.end;
    }
}

#[track_caller]
fn check_one(text: &str, kind: Kind, raw: &str, masked: &str) {
    check(text, &[(kind, raw, masked)]);
}

#[test]
fn kind_names() {
    assert_eq!(Kind::DateOfBirth.as_str(), "date_of_birth");
    assert_eq!(Kind::UrlCredentials.as_str(), "url_credentials");
    assert_eq!(Kind::SecretField.as_str(), "secret_field");
    assert!(Kind::Jwt.is_secret() && Kind::SecretField.is_secret());
    assert!(!Kind::Email.is_secret() && !Kind::DateOfBirth.is_secret());
}

#[test]
fn emails() {
    use Kind::Email;
    check_one(
        "contact john@example.com today",
        Email,
        "john@example.com",
        "j***@e******.com",
    );
    check_one(
        "<first.last+tag@mail.example.co.uk>",
        Email,
        "first.last+tag@mail.example.co.uk",
        "f*************@m***.*******.**.uk",
    );
    check_one(
        r#"{"email":"a.b@corp.io"}"#,
        Email,
        "a.b@corp.io",
        "a**@c***.io",
    );
    check_one("x a@b.co y", Email, "a@b.co", "*@*.co");
}

#[test]
fn phones() {
    use Kind::Phone;
    check_one(
        "call +1 (555) 123-4567 now",
        Phone,
        "+1 (555) 123-4567",
        "+1 (***) ***-**67",
    );
    check_one(
        "tel: +44 20 7946 0958",
        Phone,
        "+44 20 7946 0958",
        "+44 ** **** **58",
    );
    check_one(
        "office (555) 123-4567.",
        Phone,
        "(555) 123-4567",
        "(***) ***-**67",
    );
    check_one("555-123-4567", Phone, "555-123-4567", "***-***-**67");
    check_one("555.123.4567", Phone, "555.123.4567", "***.***.**67");
    check_one("1-555-123-4567", Phone, "1-555-123-4567", "*-***-***-**67");
    check_one(
        "London 020 7946 0958",
        Phone,
        "020 7946 0958",
        "*** **** **58",
    );
    check_one("+4915112345678", Phone, "+4915112345678", "+***********78");
    // A trailing number group that makes it too long is left out.
    check_one(
        "dial 020 7946 0958 12 times",
        Phone,
        "020 7946 0958",
        "*** **** **58",
    );
}

#[test]
fn cards() {
    use Kind::Card;
    check_one(
        "card 4242 4242 4242 4242 ok",
        Card,
        "4242 4242 4242 4242",
        "**** **** **** 4242",
    );
    check_one(
        "4111111111111111",
        Card,
        "4111111111111111",
        "************1111",
    );
    check_one(
        "mc 5555-5555-5555-4444",
        Card,
        "5555-5555-5555-4444",
        "****-****-****-4444",
    );
    check_one(
        "mc2 2223003122003222",
        Card,
        "2223003122003222",
        "************3222",
    );
    check_one(
        "amex 3782 822463 10005",
        Card,
        "3782 822463 10005",
        "**** ****** *0005",
    );
    check_one(
        "disc 6011111111111117",
        Card,
        "6011111111111117",
        "************1117",
    );
    check_one(
        "visa13 4222222222222",
        Card,
        "4222222222222",
        "*********2222",
    );
}

#[test]
fn ssns() {
    use Kind::Ssn;
    check_one("ssn 123-45-6789", Ssn, "123-45-6789", "***-**-6789");
    check_one("SSN: 078 05 1120.", Ssn, "078 05 1120", "*** ** 1120");
    check_one("(899-99-9999)", Ssn, "899-99-9999", "***-**-9999");
}

#[test]
fn ibans() {
    use Kind::Iban;
    check_one(
        "iban DE89 3704 0044 0532 0130 00 please",
        Iban,
        "DE89 3704 0044 0532 0130 00",
        "DE** **** **** **** **30 00",
    );
    check_one(
        "GB82WEST12345698765432",
        Iban,
        "GB82WEST12345698765432",
        "GB****************5432",
    );
    check_one(
        "to FR1420041010050500013M02606.",
        Iban,
        "FR1420041010050500013M02606",
        "FR*********************2606",
    );
    // An upper-case word after a grouped IBAN is not part of it.
    check_one(
        "DE89 3704 0044 0532 0130 00 THEN",
        Iban,
        "DE89 3704 0044 0532 0130 00",
        "DE** **** **** **** **30 00",
    );
}

#[test]
fn ip_addresses() {
    check_one("from 10.0.0.1", Kind::Ipv4, "10.0.0.1", "10.*.*.*");
    check_one(
        "host 192.168.1.20:8080",
        Kind::Ipv4,
        "192.168.1.20",
        "192.*.*.*",
    );
    check_one("net 172.16.0.0/12.", Kind::Ipv4, "172.16.0.0", "172.*.*.*");
    check_one(
        "addr 2001:db8::8a2e:370:7334",
        Kind::Ipv6,
        "2001:db8::8a2e:370:7334",
        "2001:****",
    );
    check_one(
        "[fe80::1ff:fe23:4567:890a]",
        Kind::Ipv6,
        "fe80::1ff:fe23:4567:890a",
        "fe80:****",
    );
    check_one(
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        Kind::Ipv6,
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:****",
    );
    check_one(
        "mapped ::ffff:192.0.2.1 end",
        Kind::Ipv6,
        "::ffff:192.0.2.1",
        "::****",
    );
}

#[test]
fn dates_of_birth() {
    use Kind::DateOfBirth;
    check_one("dob: 1990-01-31", DateOfBirth, "1990-01-31", "****-**-**");
    check_one(
        r#"{"birthdate":"31/01/1990"}"#,
        DateOfBirth,
        "31/01/1990",
        "**/**/****",
    );
    check_one(
        "date_of_birth=01/31/1990&x=1",
        DateOfBirth,
        "01/31/1990",
        "**/**/****",
    );
    check_one(
        "Birthday: Jan 31, 1990",
        DateOfBirth,
        "Jan 31, 1990",
        "*** **, ****",
    );
    check_one(
        "birth_date: 31.01.1990",
        DateOfBirth,
        "31.01.1990",
        "**.**.****",
    );
    check_one(
        "born: x, birthDate: 31 January 1990",
        DateOfBirth,
        "31 January 1990",
        "** ******* ****",
    );
    check_one(
        r#""customer.dateOfBirth": "1990-01-31T00:00:00Z""#,
        DateOfBirth,
        "1990-01-31",
        "****-**-**",
    );
}

#[test]
fn token_formats() {
    let aws = aws_key();
    check_one(
        &format!("key {aws}."),
        Kind::AwsAccessKey,
        &aws,
        &format!("AKIA{}", stars(16)),
    );
    let gh = github_token();
    check_one(
        &format!("GH={gh}"),
        Kind::GithubToken,
        &gh,
        &format!("ghp_{}", stars(36)),
    );
    let pat = github_pat();
    check_one(
        &format!("use {pat} now"),
        Kind::GithubToken,
        &pat,
        &format!("github_pat_{}", stars(33)),
    );
    let slack = slack_token();
    check_one(
        &format!("'{slack}'"),
        Kind::SlackToken,
        &slack,
        &format!("xoxb-{}", stars(25)),
    );
    let hook = slack_webhook();
    check_one(
        &format!("post to {hook} please"),
        Kind::SlackWebhook,
        &hook,
        &format!(
            "https://hooks.slack.com/services/{}/{}/{}",
            stars(9),
            stars(9),
            stars(24)
        ),
    );
    let stripe = stripe_key();
    check_one(
        &format!("STRIPE {stripe}"),
        Kind::StripeKey,
        &stripe,
        &format!("sk_live_{}", stars(24)),
    );
    let google = google_key();
    check_one(
        &format!("key={google}&q=1"),
        Kind::GoogleApiKey,
        &google,
        &format!("AIza{}", stars(35)),
    );
    let token = jwt();
    check_one(&format!("jwt {token} end"), Kind::Jwt, &token, "[JWT]");
}

#[test]
fn private_keys() {
    let block = pem();
    check_one(
        &format!("key:\n{block}\nnext line"),
        Kind::PrivateKey,
        &block,
        "[PRIVATE KEY]",
    );
    // Inside a JSON string with escaped newlines, under a secret key: one finding.
    let escaped = block.replace('\n', "\\n");
    check_one(
        &format!(r#"{{"private_key": "{escaped}", "x": 1}}"#),
        Kind::PrivateKey,
        &escaped,
        "[PRIVATE KEY]",
    );
    // A truncated key (no footer) is masked up to where the key material ends.
    let header = format!("-----BEGIN {}-----", "OPENSSH PRIVATE KEY");
    let truncated = format!("{header}\nb3BlbnNzaC1rZXktdjEAAAAA");
    check_one(
        &format!(r#""{truncated}""#),
        Kind::PrivateKey,
        &truncated,
        "[PRIVATE KEY]",
    );
}

#[test]
fn url_credentials() {
    use Kind::UrlCredentials;
    check_one(
        "postgres://admin:s3cret@db.example.com/app",
        UrlCredentials,
        "s3cret",
        "****",
    );
    check_one(
        "mongodb+srv://u:p4ss@cluster0.example.net",
        UrlCredentials,
        "p4ss",
        "****",
    );
    check_one(
        "redis://:hunter22@cache:6379/0",
        UrlCredentials,
        "hunter22",
        "****",
    );
    check(
        "smtp://bob@example.com:pw1@mail.example.com",
        &[
            (Kind::Email, "bob@example.com", "b**@e******.com"),
            (UrlCredentials, "pw1", "****"),
        ],
    );
}

#[test]
fn bearer_tokens() {
    use Kind::BearerToken;
    check_one(
        "Authorization: Bearer abc123def456",
        BearerToken,
        "abc123def456",
        "****",
    );
    check_one(
        "curl -H 'bearer abcd.efgh-ijkl'",
        BearerToken,
        "abcd.efgh-ijkl",
        "****",
    );
}

#[test]
fn secret_fields() {
    use Kind::SecretField;
    let m = "********";
    check_one("password=hunter2 next", SecretField, "hunter2", m);
    check_one("api-key: xyz789\n", SecretField, "xyz789", m);
    check_one(
        r#"{"apiKey":"s3cr3t value","n":1}"#,
        SecretField,
        "s3cr3t value",
        m,
    );
    check_one("DB_PASSWORD='p@ss;word' rest", SecretField, "p@ss;word", m);
    check_one(
        "https://x.test/cb?token=abc123&x=1",
        SecretField,
        "abc123",
        m,
    );
    check_one(r#"{\"password\":\"hunter2\"}"#, SecretField, "hunter2", m);
    check_one("passwd := s3cr3t;", SecretField, "s3cr3t", m);
    check_one(":client_secret => \"pw 123\"", SecretField, "pw 123", m);
    check_one("X-Api-Key: k-123", SecretField, "k-123", m);
    check_one("My API Key: k-123", SecretField, "k-123", m);
    check_one("--password=x1 --user=bob", SecretField, "x1", m);
    check_one(
        "Authorization: Basic dXNlcjpwYXNz",
        SecretField,
        "dXNlcjpwYXNz",
        m,
    );
    check_one(r#""pin_or_pwd": 123456,"#, SecretField, "123456", m);
    check_one("session=a%3Db;", SecretField, "a%3Db", m);
    // Passwords starting with `$` are not references.
    check_one("password: $ecret9", SecretField, "$ecret9", m);
    check_one("password=$Secret1", SecretField, "$Secret1", m);
}

#[test]
fn aws_secret_keys() {
    use Kind::AwsSecretKey;
    let secret = aws_secret();
    let m = "********";
    check_one(
        &format!("aws_secret_access_key = {secret}\n"),
        AwsSecretKey,
        &secret,
        m,
    );
    check_one(
        &format!(r#"{{"SecretAccessKey": "{secret}"}}"#),
        AwsSecretKey,
        &secret,
        m,
    );
    check_one(
        &format!("client_secret: {secret}"),
        AwsSecretKey,
        &secret,
        m,
    );
    // AWS's documented example stays visible.
    let example = format!("{}{}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "EXAMPLEKEY");
    check(&format!("aws_secret_access_key={example}"), &[]);
}

#[test]
fn decoys_are_not_flagged() {
    let decoys = [
        "550e8400-e29b-41d4-a716-446655440000",
        "commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "version 1.2.3 and v2.10.0-rc.1",
        "1.2.3.4.5",
        "v1.2.3.4",
        "ORD-2024-000123 JIRA-4521 #12345",
        "4111111111111112",
        "1234 5678 9012 3456",
        "ts 1700000000 and 1700000000123",
        "2024-01-31T12:00:00Z",
        "2024-01-31 12:30:45",
        "at 12:30:45",
        "a :: b",
        "31/01/1990",
        "The quick brown fox jumps over the lazy dog.",
        "token_type: bearer",
        "author: jdoe-bot", // (a person's name there is a name finding)
        "max_tokens: 1024",
        "tokenizer: bpe",
        "secretary: Bob",
        "Bearer authentication is used here",
        "git@github.com:org/repo.git",
        "logo@2x.png",
        "local 555-1234",
        "order 123456789",
        "zip 02134-1234",
        "10.0.0.256",
        "01.02.03.04",
        "Vec::new and std::collections::HashMap",
        "https://auth.example.com:443/login",
        r#"{"password": null, "token": true}"#,
        "mac 00:1A:2B:3C:4D:5E",
        "0000 0000 0000",
        "+1 more, 3+4=7",
        "price 1 234 567",
        "session_timeout: 30",
        "password_length: 12",
        r#"{"className": "x", "discard": "y"}"#,
        "UUID 123e4567-e89b-12d3-a456-426614174000",
        "ip-10-0-0-1.ec2.internal",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "password: $DB_PASSWORD",
        "secret=$(cat /run/secrets/db)",
    ];
    let detector = Detector::default();
    for text in decoys {
        assert_eq!(detector.find(text), vec![], "decoy {text:?}");
    }
}

#[test]
fn invalid_values_stay_visible() {
    let detector = Detector::default();
    let texts = [
        // AWS documented example key.
        format!("{}{}", "AKIA", "IOSFODNN7EXAMPLE"),
        // Luhn-invalid card numbers.
        "4242 4242 4242 4241".to_string(),
        "5555555555554445".to_string(),
        // Impossible SSNs: area 000, 666, 900-999; group 00; serial 0000.
        "000-12-3456".to_string(),
        "666-12-3456".to_string(),
        "900-12-3456".to_string(),
        "123-00-4567".to_string(),
        "123-45-0000".to_string(),
        // IBAN with a bad checksum.
        "DE88 3704 0044 0532 0130 00".to_string(),
        "GB83WEST12345698765432".to_string(),
        "NL91 ABNA 0417 1643 01".to_string(),
    ];
    for text in &texts {
        let (masked, findings) = detector.mask(text);
        assert!(findings.is_empty(), "{text:?}: {findings:?}");
        assert_eq!(&masked, text);
    }
}

#[test]
fn card_inside_an_iban_shaped_token() {
    check_one(
        "ref AB12 4111 1111 1111 1111",
        Kind::Card,
        "4111 1111 1111 1111",
        "**** **** **** 1111",
    );
    check_one(
        "123 42 4111 1111 1111 1111",
        Kind::Card,
        "4111 1111 1111 1111",
        "**** **** **** 1111",
    );
    check_one(
        "4111 1111 1111 1111 420",
        Kind::Card,
        "4111 1111 1111 1111",
        "**** **** **** 1111",
    );
}

#[test]
fn overlaps_keep_the_specific_finding() {
    let token = jwt();
    check_one(
        &format!("Authorization: Bearer {token}"),
        Kind::Jwt,
        &token,
        "[JWT]",
    );
    check_one(&format!("Bearer {token}"), Kind::Jwt, &token, "[JWT]");
    // The host after the password is not an e-mail.
    check_one(
        "postgres://user:pass@example.com/db",
        Kind::UrlCredentials,
        "pass",
        "****",
    );
    check_one(
        "card: 4111 1111 1111 1111",
        Kind::Card,
        "4111 1111 1111 1111",
        "**** **** **** 1111",
    );
    let gh = github_token();
    check_one(
        &format!("password={gh}"),
        Kind::GithubToken,
        &gh,
        &format!("ghp_{}", stars(36)),
    );
    check_one("ssn: 123-45-6789", Kind::Ssn, "123-45-6789", "***-**-6789");
    check_one(
        "dob: 1990-01-31",
        Kind::DateOfBirth,
        "1990-01-31",
        "****-**-**",
    );
    check_one(
        "token=bob@example.com/x",
        Kind::SecretField,
        "bob@example.com/x",
        "********",
    );
    check_one(
        "iban: DE89 3704 0044 0532 0130 00",
        Kind::Iban,
        "DE89 3704 0044 0532 0130 00",
        "DE** **** **** **** **30 00",
    );
}

#[test]
fn key_hint_normalisation() {
    let d = Detector::default();
    for key in [
        "password",
        "apiKey",
        "API-KEY",
        "api_key",
        "x_api_key",
        "x-api-key",
        "db_password",
        "passwordHash",
        "Authorization",
        "AUTH_TOKEN",
        "userSSN",
        "user_ssn",
        "client.secret",
        "Private Key",
        "credentials",
        "sessionToken",
        "card",
        "IBAN",
        "pwd",
    ] {
        assert!(d.is_secret_key(key), "{key} is a secret key");
    }
    for key in [
        "",
        "token_type",
        "tokenizer",
        "secretary",
        "author",
        "className",
        "discard",
        "max_tokens",
        "password_length",
        "username",
        "email",
        "cardinality",
        "session_id",
        "oauth_url",
        "tokenCount",
    ] {
        assert!(!d.is_secret_key(key), "{key} is not a secret key");
    }
    for key in [
        "dob",
        "date_of_birth",
        "birthdate",
        "birthday",
        "birth_date",
        "customerDOB",
        "dateOfBirth",
    ] {
        assert!(d.is_birth_date_key(key), "{key} is a birth date key");
    }
    for key in ["adobe", "birthplace", "date", "updated_at"] {
        assert!(!d.is_birth_date_key(key), "{key} is not a birth date key");
    }
}

#[test]
fn custom_hints() {
    let d = Detector::new(&["X-Custom-Key"]);
    assert!(d.is_secret_key("X_CUSTOM_KEY") && d.is_secret_key("app.xCustomKey"));
    assert!(!d.is_secret_key("password"));
    let text = "x-custom-key: abc password=hunter2";
    let found: Vec<&str> = d.find(text).iter().map(|f| &text[f.start..f.end]).collect();
    assert_eq!(found, ["abc"]);
    // Birth dates and AWS secret keys are found whatever the hints.
    assert_eq!(d.find("dob: 1990-01-31")[0].kind, Kind::DateOfBirth);
}

#[test]
fn mask_replaces_findings_in_place() {
    let d = Detector::default();
    let text = "mail john@example.com, pwd: hunter2, from 10.1.2.3 — café 4111111111111111";
    let (masked, findings) = d.mask(text);
    assert_eq!(
        masked,
        "mail j***@e******.com, pwd: ********, from 10.*.*.* — café ************1111"
    );
    assert_eq!(findings.len(), 4);
    assert!(findings.windows(2).all(|w| w[0].end <= w[1].start));
    assert_eq!(&text[findings[1].start..findings[1].end], "hunter2");
    assert_eq!(findings[1].detector, "key-hint");
}

#[test]
fn non_ascii_text() {
    let d = Detector::default();
    let text = "日本語 password=пароль🙂 naïve john@example.com «+44 20 7946 0958»";
    let found: Vec<(Kind, &str)> = d
        .find(text)
        .iter()
        .map(|f| (f.kind, &text[f.start..f.end]))
        .collect();
    assert_eq!(
        found,
        [
            (Kind::SecretField, "пароль🙂"),
            (Kind::Email, "john@example.com"),
            (Kind::Phone, "+44 20 7946 0958"),
        ]
    );
}

/// xorshift64: deterministic generated inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn generated_inputs_never_panic_and_never_leak_planted_values() {
    let planted = [
        "john.doe@example.com".to_string(),
        "4111 1111 1111 1111".to_string(),
        "123-45-6789".to_string(),
        "DE89370400440532013000".to_string(),
        "+1 (555) 123-4567".to_string(),
        aws_key(),
        github_token(),
        stripe_key(),
        google_key(),
        slack_token(),
        jwt(),
    ];
    let fragments = [
        "password=",
        "\"",
        "'",
        "\\",
        ":",
        "=",
        "@",
        "://",
        "-",
        ".",
        "+",
        "(",
        ")",
        " ",
        "\n",
        "\t",
        ",",
        "&",
        "é",
        "日本語",
        "🙂",
        "\u{a0}",
        "\u{0}",
        "ß",
        "Ω",
        "a",
        "Z",
        "0",
        "7",
        "42",
        "deadbeef",
        "::",
        "Bearer ",
        "token: ",
        "\"apiKey\":\"",
        "dob: ",
        "1990-01-31",
        concat!("-----BEGIN RSA PRIVATE", " KEY-----"),
        concat!("-----END RSA PRIVATE", " KEY-----"),
        "https://u:p@",
        "eyJ",
        "AKIA",
        "ghp_",
        "10.0.0.",
        "fe80::",
        "DE89 ",
        "{",
        "}",
    ];
    let d = Detector::default();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..3000 {
        let mut text = String::new();
        let mut planted_here = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.below(8) == 0 {
                let value = &planted[rng.below(planted.len())];
                text.push(' ');
                text.push_str(value);
                text.push(' ');
                planted_here.push(value);
            } else {
                text.push_str(fragments[rng.below(fragments.len())]);
            }
        }
        let (masked, findings) = d.mask(&text);
        let mut last_end = 0;
        for f in &findings {
            assert!(f.start >= last_end && f.start < f.end && f.end <= text.len());
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            last_end = f.end;
        }
        for value in planted_here {
            assert!(
                !masked.contains(value.as_str()),
                "round {round}: {value:?} leaked from {text:?} as {masked:?}"
            );
        }
    }
}

#[test]
fn masks_never_echo_the_raw_value() {
    let kinds = Kind::ALL;
    let alphabet: Vec<char> = "ab1Z9 -.@:/+_()é日🙂".chars().collect();
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let raw: String = (0..rng.below(30))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        for kind in kinds {
            let masked = mask(kind, &raw);
            if raw.chars().filter(|c| c.is_alphanumeric()).count() >= 8 {
                assert_ne!(masked, raw, "{kind:?} {raw:?}");
            }
        }
    }
    for kind in kinds {
        for raw in [
            "", "a", "@", "+", "::", "ghp_", "AKIA", "sk_live_", "x@y", "1.2",
        ] {
            let _ = mask(kind, raw);
        }
    }
}

/// Found by the property test: a token whose letters spell a key hint (`…ADOB…`) followed by
/// a `:` was read as a birth-date key with an empty value and skipped whole.
#[test]
fn a_token_that_looks_like_a_key_is_still_a_token() {
    let d = Detector::default();
    for text in [
        " ghp_a00A0AADOB00000AaaAaAA0AAa00aA0AAAaA :",
        "ghp_a00A0AADOB00000AaaAaAA0AAa00aA0AAAaA: x",
        " sk_live_0000PASSWORD000000000000 = ",
        "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaPwd1: hunter22",
        "sk_live_0000PASSWORD000000000000=\"abcdefgh\"",
    ] {
        let (masked, found) = d.mask(text);
        assert!(!found.is_empty(), "{text}");
        assert!(
            !masked.contains("a00A0AADOB") && !masked.contains("PASSWORD0"),
            "{masked}"
        );
    }
}

/// Another helper's finding: a zero-width space inside a token or between the digit groups of
/// a card number hid it from every detector.
#[test]
fn a_zero_width_character_inside_a_value_does_not_hide_it() {
    let d = Detector::default();
    let token = stripe_key();
    let hidden_token = format!("{}\u{200b}{}", &token[..8], &token[8..]);
    for text in [
        format!("key {hidden_token} here"),
        "card 4111\u{200b} 1111 1111 1111 paid".to_owned(),
        "card 4111\u{2060}1111\u{feff}1111\u{00ad}1111 paid".to_owned(),
        "mail ann\u{200d}@example.com".to_owned(),
    ] {
        let (masked, found) = d.mask(&text);
        assert_eq!(found.len(), 1, "{text:?}: {found:?}");
        let f = &found[0];
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(
            !masked.contains("1111 1111")
                && !masked.contains(&token[10..])
                && !masked.contains("ann"),
            "{masked}"
        );
    }
}

#[test]
fn a_card_number_split_by_a_line_break_inside_a_value_is_found() {
    let d = Detector::default();
    for (text, raw) in [
        (
            "{\"card\":\"5500 0000\\n0000 0004\"}",
            "5500 0000\\n0000 0004",
        ),
        ("note: 5500 0000\n0000 0004 ok", "5500 0000\n0000 0004"),
        (
            "pay 4111 1111\r\n  1111 1111 now",
            "4111 1111\r\n  1111 1111",
        ),
    ] {
        let found = d.find(text);
        assert!(
            found
                .iter()
                .any(|f| f.kind == Kind::Card && &text[f.start..f.end] == raw),
            "{text:?}: {found:?}"
        );
        let (masked, _) = d.mask(text);
        assert_eq!(masked.lines().count(), text.lines().count(), "{masked:?}");
        if text.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(&masked).expect("still JSON");
        }
    }
}

#[test]
fn every_card_brand_by_issuer_range_and_length() {
    let d = Detector::default();
    for raw in [
        "30569309025904",   // Diners 14
        "38520000023237",   // Diners 14
        "3530111333300000", // JCB 16
        "213112345678904",  // JCB 15 (2131)
        "6759649826438453", // Maestro 16
        "501800000009",     // Maestro 12
        "6304000000000000", // Maestro 16
        "6212345678901265", // UnionPay 16
        "6212345678901232", // UnionPay 16
        "2221000000000009", // Mastercard 2-series
        "6011000990139424", // Discover
        "4222222222222",    // Visa 13
        "3056 930902 5904", // Diners grouped 4-6-4
    ] {
        let luhn_ok = luhn(
            &raw.bytes()
                .filter(u8::is_ascii_digit)
                .map(|c| c - b'0')
                .collect::<Vec<_>>(),
        );
        if !luhn_ok {
            continue;
        }
        let text = format!("paid with {raw} today");
        let found = d.find(&text);
        assert!(
            found
                .iter()
                .any(|f| f.kind == Kind::Card && &text[f.start..f.end] == raw),
            "{raw}: {found:?}"
        );
    }
}

#[test]
fn national_phone_formats_are_validated_by_libphonenumber() {
    let d = Detector::default()
        .with_phone_regions(&["GB", "FR", "ES", "DE", "US"])
        .unwrap();
    for raw in [
        "07911 123456",
        "01 23 45 67 89",
        "699 956 915",
        "030 123456",
        "(202) 456-1111",
    ] {
        let text = format!("call {raw} now");
        let found = d.find(&text);
        assert!(
            found
                .iter()
                .any(|f| f.kind == Kind::Phone && &text[f.start..f.end] == raw),
            "{raw}: {found:?}"
        );
    }
    // Dates, versions and short counts are not phone numbers.
    for text in [
        "on 2024-01-15 at",
        "release 10 20 30",
        "v 1.2.3",
        "15.01.2024",
    ] {
        assert!(d.find(text).iter().all(|f| f.kind != Kind::Phone), "{text}");
    }
}

#[test]
fn names_and_addresses_under_keys_and_in_text() {
    let d = Detector::default();
    for (text, kind, raw) in [
        (
            r#"{"approver_name": "John Smith"}"#,
            Kind::Name,
            "John Smith",
        ),
        (
            r#"{"customer": "Linda Taylor"}"#,
            Kind::Name,
            "Linda Taylor",
        ),
        (r#"{"name": "Linda Taylor"}"#, Kind::Name, "Linda Taylor"),
        ("requested by Linda Taylor", Kind::Name, "Linda Taylor"),
        (
            r#"{"street": "Koskikatu 25"}"#,
            Kind::Address,
            "Koskikatu 25",
        ),
        (
            "ship to 6750 Koskikatu 25 Apt. 864",
            Kind::Address,
            "6750 Koskikatu 25 Apt. 864",
        ),
        (
            "at 1600 Pennsylvania Ave NW today",
            Kind::Address,
            "1600 Pennsylvania Ave NW",
        ),
    ] {
        let found = d.find(text);
        assert!(
            found
                .iter()
                .any(|f| f.kind == kind && &text[f.start..f.end] == raw),
            "{text}: {found:?}"
        );
    }
    for text in [
        r#"{"name": "deploy-web"}"#,
        r#"{"hostname": "web-01"}"#,
        r#"{"ip_address": "Main Street"}"#,
    ] {
        assert!(d.find(text).is_empty(), "{text}: {:?}", d.find(text));
    }
}
