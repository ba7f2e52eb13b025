//! A generator for a labelled test corpus: JSON lines and free text with the exact byte span of
//! every sensitive value (per type) and of every look-alike decoy that must stay visible. Used
//! by the accuracy test and the throughput benchmark; deterministic for a seed. (Moved here from
//! the library's `mask` module: what it generates for a seed is unchanged.)

use countersign::mask::Kind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;

/// The corpus and its labels.
pub struct Labelled {
    pub text: String,
    /// Sensitive values that must be masked.
    pub secrets: Vec<(Kind, Range<usize>)>,
    /// Look-alikes that must stay exactly as they are.
    pub decoys: Vec<(&'static str, Range<usize>)>,
}

struct Builder {
    rng: StdRng,
    out: Labelled,
}

const WORDS: &[&str] = &[
    "the",
    "export",
    "customer",
    "report",
    "weekly",
    "deploy",
    "service",
    "config",
    "approved",
    "pipeline",
    "request",
    "table",
    "orders",
    "quarterly",
    "analysis",
    "rollout",
    "cluster",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl Builder {
    fn push(&mut self, s: &str) {
        self.out.text.push_str(s);
    }

    fn secret(&mut self, kind: Kind, value: &str) {
        let start = self.out.text.len();
        self.push(value);
        self.out.secrets.push((kind, start..self.out.text.len()));
    }

    fn decoy(&mut self, name: &'static str, value: &str) {
        let start = self.out.text.len();
        self.push(value);
        self.out.decoys.push((name, start..self.out.text.len()));
    }

    fn chars(&mut self, set: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| set[self.rng.random_range(0..set.len())] as char)
            .collect()
    }

    fn digits(&mut self, n: usize) -> String {
        self.chars(b"0123456789", n)
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.rng.random_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn luhn_complete(&mut self, prefix: &str, len: usize) -> String {
        let mut number = format!("{prefix}{}", self.digits(len - prefix.len() - 1));
        let check = (0..10)
            .find(|d| luhn_ok(&format!("{number}{d}")))
            .expect("a check digit exists");
        number.push_str(&check.to_string());
        number
    }

    fn iban(&mut self) -> String {
        let bban = self.digits(18);
        let rearranged = format!("{bban}131400"); // "DE" = 13 14, check digits 00
        let check = 98 - mod97(&rearranged);
        format!("DE{check:02}{bban}")
    }

    /// One sensitive value of `kind`, written with some context.
    fn sensitive(&mut self, kind: Kind) {
        let n = self.rng.random_range(0..4);
        match kind {
            Kind::Email => {
                let v = format!(
                    "{}.{}{}@example{}.com",
                    self.words(1),
                    self.words(1),
                    self.digits(2),
                    self.digits(1)
                );
                self.push("contact ");
                self.secret(kind, &v);
            }
            Kind::Phone => {
                let v = match n {
                    0 => format!("+1 (555) {}-{}", self.digits(3), self.digits(4)),
                    1 => format!("+44 20 7946 {}", self.digits(4)),
                    2 => format!("(555) {}-{}", self.digits(3), self.digits(4)),
                    _ => format!("+49 30 {} {}", self.digits(4), self.digits(4)),
                };
                self.push("call ");
                self.secret(kind, &v);
            }
            Kind::Card => {
                let raw = match n {
                    0 => self.luhn_complete("4", 16),
                    1 => {
                        let prefix = format!("5{}", self.rng.random_range(1..6));
                        self.luhn_complete(&prefix, 16)
                    }
                    2 => self.luhn_complete("37", 15),
                    _ => self.luhn_complete("6011", 16),
                };
                let v = if raw.len() == 16 && self.rng.random_bool(0.5) {
                    raw.as_bytes()
                        .chunks(4)
                        .map(|c| std::str::from_utf8(c).unwrap())
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    raw
                };
                self.push("card ");
                self.secret(kind, &v);
            }
            Kind::Ssn => {
                let area = loop {
                    let a = self.rng.random_range(1..900);
                    if a != 666 {
                        break a;
                    }
                };
                let v = format!(
                    "{area:03}-{:02}-{:04}",
                    self.rng.random_range(1..100),
                    self.rng.random_range(1..10000)
                );
                self.push("ssn on file ");
                self.secret(kind, &v);
            }
            Kind::Iban => {
                let v = self.iban();
                self.push("iban ");
                self.secret(kind, &v);
            }
            Kind::Ipv4 => {
                let v = format!(
                    "{}.{}.{}.{}",
                    self.rng.random_range(1..224),
                    self.rng.random_range(0..256),
                    self.rng.random_range(0..256),
                    self.rng.random_range(1..255)
                );
                self.push("from ");
                self.secret(kind, &v);
            }
            Kind::Ipv6 => {
                let v = format!(
                    "2001:db8:{:x}::{:x}",
                    self.rng.random_range(1..0xffff),
                    self.rng.random_range(1..0xffff)
                );
                self.push("from ");
                self.secret(kind, &v);
            }
            Kind::DateOfBirth => {
                let v = format!(
                    "19{}-0{}-1{}",
                    self.digits(2),
                    self.rng.random_range(1..10),
                    self.rng.random_range(0..10)
                );
                self.push("\"dob\": \"");
                self.secret(kind, &v);
                self.push("\"");
            }
            Kind::AwsAccessKey => {
                let v = format!("AKIA{}", self.chars(UPPER32, 16));
                self.push("key ");
                self.secret(kind, &v);
            }
            Kind::AwsSecretKey => {
                let v = format!(
                    "{}/{}+{}",
                    self.chars(ALNUM, 20),
                    self.chars(ALNUM, 10),
                    self.chars(ALNUM, 8)
                );
                self.push("aws_secret_access_key=");
                self.secret(kind, &v);
            }
            Kind::GithubToken => {
                let v = format!("ghp_{}", self.chars(ALNUM, 36));
                self.push("token ");
                self.secret(kind, &v);
            }
            Kind::SlackToken => {
                let v = format!(
                    "xoxb-{}-{}-{}",
                    self.digits(11),
                    self.digits(12),
                    self.chars(ALNUM, 24)
                );
                self.push("slack ");
                self.secret(kind, &v);
            }
            Kind::SlackWebhook => {
                let v = format!(
                    "https://hooks.slack.com/services/T{}/B{}/{}",
                    self.chars(UPPER32, 8),
                    self.chars(UPPER32, 10),
                    self.chars(ALNUM, 24)
                );
                self.push("webhook ");
                self.secret(kind, &v);
            }
            Kind::StripeKey => {
                let v = format!("sk_live_{}", self.chars(ALNUM, 24));
                self.push("stripe ");
                self.secret(kind, &v);
            }
            Kind::GoogleApiKey => {
                let v = format!("AIza{}", self.chars(ALNUM, 35));
                self.push("maps ");
                self.secret(kind, &v);
            }
            Kind::Jwt => {
                let v = format!(
                    "eyJ{}.eyJ{}.{}",
                    self.chars(ALNUM, 20),
                    self.chars(ALNUM, 40),
                    self.chars(ALNUM, 43)
                );
                self.push("id_jwt ");
                self.secret(kind, &v);
            }
            Kind::PrivateKey => {
                let body: Vec<String> = (0..4).map(|_| self.chars(ALNUM, 64)).collect();
                let v = format!(
                    "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
                    body.join("\n")
                );
                self.secret(kind, &v);
            }
            Kind::UrlCredentials => {
                let pw = self.chars(ALNUM, 16);
                self.push("dsn postgres://app:");
                self.secret(kind, &pw);
                self.push("@db.internal:5432/app");
            }
            Kind::BearerToken => {
                let t = self.chars(ALNUM, 32);
                self.push("Authorization: Bearer ");
                self.secret(kind, &t);
            }
            Kind::SecretField => {
                let v = self.chars(ALNUM, 12);
                match n {
                    0 => self.push("password="),
                    1 => self.push("\"apiKey\": \""),
                    2 => self.push("client_secret: "),
                    _ => self.push("X-API-KEY: "),
                }
                self.secret(kind, &v);
                if n == 1 {
                    self.push("\"");
                }
            }
            // Names and addresses: a few fixed ones (the accuracy test uses independent data).
            Kind::Name => {
                self.push("requested by ");
                let v = ["Linda Taylor", "John Smith", "Maria Garcia", "David Miller"][n];
                self.secret(kind, v);
            }
            Kind::Address => {
                self.push("ship to ");
                let v = [
                    "1600 Pennsylvania Ave NW",
                    "12 Baker Street",
                    "Hauptstraße 5",
                    "Via Roma 12",
                ][n];
                self.secret(kind, v);
            }
        }
    }

    fn decoy_value(&mut self) {
        match self.rng.random_range(0..9) {
            0 => {
                let v = format!(
                    "{}-{}-4{}-a{}-{}",
                    hex(&mut self.rng, 8),
                    hex(&mut self.rng, 4),
                    hex(&mut self.rng, 3),
                    hex(&mut self.rng, 3),
                    hex(&mut self.rng, 12)
                );
                self.push("id ");
                self.decoy("uuid", &v);
            }
            1 => {
                let v = hex(&mut self.rng, 40);
                self.push("commit ");
                self.decoy("git_sha", &v);
            }
            2 => {
                let v = hex(&mut self.rng, 64);
                self.push("sha256:");
                self.decoy("sha256", &v);
            }
            3 => {
                let v = format!(
                    "v{}.{}.{}",
                    self.rng.random_range(0..20),
                    self.rng.random_range(0..50),
                    self.rng.random_range(0..100)
                );
                self.push("version ");
                self.decoy("version", &v);
            }
            4 => {
                let v = format!("ORD-2024-{}", self.digits(6));
                self.push("order ");
                self.decoy("order_id", &v);
            }
            5 => {
                let mut v = self.luhn_complete("4", 16);
                // Break the check digit.
                let last = v.pop().unwrap().to_digit(10).unwrap();
                v.push(char::from_digit((last + 1) % 10, 10).unwrap());
                self.push("ref ");
                self.decoy("luhn_invalid", &v);
            }
            6 => {
                let v = format!("17{}", self.digits(8));
                self.push("at ");
                self.decoy("unix_timestamp", &v);
            }
            7 => {
                let v = format!(
                    "2024-0{}-1{}T12:{}:00Z",
                    self.rng.random_range(1..10),
                    self.rng.random_range(0..10),
                    self.rng.random_range(10..60)
                );
                self.push("at ");
                self.decoy("iso_timestamp", &v);
            }
            _ => {
                self.push("example ");
                self.decoy("aws_example_key", "AKIAIOSFODNN7EXAMPLE");
            }
        }
    }
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| b"0123456789abcdef"[rng.random_range(0..16)] as char)
        .collect()
}

/// The Luhn check of a string of ASCII digits (the same rule as the detector's, written again
/// here so the generator does not depend on the library's internals).
pub fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (true, d2) if d2 > 9 => d2 - 9,
                (true, d2) => d2,
                (false, _) => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn mod97(digits: &str) -> u32 {
    digits
        .bytes()
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97)
}

/// Every kind the generator labels: all but names and addresses (measured on independent
/// data, `tests/data/mask/`).
pub const KINDS: &[Kind] = Kind::ALL.split_at(20).0;

/// Generates about `bytes` of mixed JSON lines and prose. `sensitive_share` is the share of
/// lines that carry a sensitive value (the rest carry a decoy or nothing).
pub fn generate(seed: u64, bytes: usize, sensitive_share: f64) -> Labelled {
    let mut b = Builder {
        rng: StdRng::seed_from_u64(seed),
        out: Labelled {
            text: String::with_capacity(bytes + 1024),
            secrets: vec![],
            decoys: vec![],
        },
    };
    let mut line = 0usize;
    while b.out.text.len() < bytes {
        line += 1;
        let json = line.is_multiple_of(2);
        if json {
            let filler = b.words(3);
            let n = b.digits(3);
            b.push(&format!(
                "{{\"event\": \"{filler}\", \"count\": {n}, \"note\": \""
            ));
        } else {
            let w = b.words(8);
            b.push(&w);
            b.push(" ");
        }
        let roll: f64 = b.rng.random();
        if roll < sensitive_share {
            let kind = KINDS[b.rng.random_range(0..KINDS.len())];
            b.sensitive(kind);
        } else if roll < sensitive_share + 0.2 {
            b.decoy_value();
        }
        let tail = b.words(4);
        b.push(" ");
        b.push(&tail);
        if json {
            b.push("\"}");
        }
        b.push("\n");
    }
    b.out
}
