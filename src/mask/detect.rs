//! Detection and format-preserving masking of PII and secrets in arbitrary text.
//!
//! This is the text-scanning core of the masking engine. [`Detector::find`] makes one pass of a
//! multi-pattern regex over the text (every detector is a pattern of it, in preference order,
//! and each match says which one it is), preceded by one pass of the key-value pattern alone
//! (kept apart because combining it with the others makes the lazy DFA build several times as
//! many states), then validates each candidate cheaply in code (Luhn, IBAN mod-97, octet ranges, SSN areas,
//! `Ipv6Addr` parsing, key-name rules, context bytes around the match) and finally resolves
//! overlapping findings. [`mask`] turns one raw value into a format-preserving mask.
//!
//! How the pass works:
//! - Token-like detectors (JWT, GitHub, Stripe, ... , PEM header) match the whole token.
//! - Key-value detectors (secret fields, dates of birth, AWS secret keys, `Bearer`) match only
//!   the key and separator (`password=`, `"apiKey": "`, `Bearer `); the value is parsed in code
//!   and the scan resumes at the start of the value, so a more specific detector (a card number
//!   under `card:`, a JWT after `Bearer `) still sees it and wins the overlap.
//! - A candidate that fails validation is dropped and the scan resumes one character after its
//!   start; the word boundaries in the patterns keep this from re-matching inside the same word.
//! - Alternatives whose first part is an unbounded run of common characters (the key name around
//!   a hint, the local part of an e-mail, a URL scheme) include the delimiter before that run
//!   instead of starting anywhere in it. Without that, every search resumed inside a long run
//!   (`1.2.3.4.` repeated) would scan to its end, and the pass would be quadratic.
//!
//! Overlaps: findings never overlap. When two candidates overlap, the one that contains the
//! other wins; on an identical span the more specific kind wins (token formats and PEM blocks >
//! URL credentials and AWS secret keys > PII kinds > `bearer_token` > `secret_field`, so a JWT
//! after `Bearer` is reported as `jwt`, and `card: 4111 1111 1111 1111` as `card`). Pattern
//! matches never overlap each other; a partial overlap between a hand-parsed value and a pattern
//! match becomes one finding over the union, of the kind whose mask hides everything.
//!
//! Rules chosen where the specification left room:
//! - URL credentials: the finding covers the password only (the user name stays visible for the
//!   reviewer); if the user name is itself an e-mail address it is reported as a separate `email`.
//! - Secret fields: a quoted value runs to its closing quote (spaces included); an unquoted one
//!   stops at whitespace or one of `& , ; " ' < > { } [ ] \`. Unquoted `null`/`true`/`false`,
//!   containers (`[`, `{`), values that are already all `*`, references (`${{ secrets.X }}`,
//!   `$(cat file)`, `$DB_PASSWORD`), and keys right after `/` or `@`
//!   (host names and URL paths such as `https://auth.example.com:443`) are skipped. An HTTP auth
//!   scheme at the start of the value (`Bearer `, `Basic `, `Token `, `Digest `) is not part of
//!   the secret.
//! - Key hints: besides the contains-rule of [`Detector::is_secret_key`], hints of four characters
//!   or fewer (`pwd`, `ssn`, `dob`, `auth`, `card`, `iban`) must start a word of the key (`user_ssn`,
//!   `userSSN`, but not `className`, `discard`, `adobe`); keys ending in `type`, `count`, `length`,
//!   `name`, `url`, `uri`, `id` (`token_type`, `session_id`), keys whose last word is a size,
//!   limit, ttl, timeout, expiry, mode, format, version, path, file, endpoint, flag word or `at`,
//!   keys starting with `max`/`min`/`num` (`max_tokens`), and words such as `author`, `tokenizer`,
//!   `secretary`, `cardinality` are not secret keys.
//! - Phones: national numbers must look like NANP (`555-123-4567`, `(555) 123-4567`,
//!   `1-555-123-4567`) or a trunk-prefixed number with at least three groups and 9-12 digits
//!   (`020 7946 0958`); 7-digit local numbers are not reported. The mask keeps the country code
//!   of an international number and the last two digits.
//! - IPv6: compressed forms need at least two groups and five hex digits (`fe80::1` yes, `::1`
//!   and `a::b` no); IPv4 octets with leading zeros are not IPs.
//! - Dates of birth: ISO (`1990-01-31`, also `/` and `.`), day-first or month-first numeric
//!   (`31/01/1990`, `01/31/1990`, `31.01.1990`, `31-01-1990`) and month-name forms
//!   (`Jan 31, 1990`, `31 January 1990`); only the date itself is masked, not a time after it.
//! - E-mail: `user@host:path` (scp-style git remotes) and image names such as `logo@2x.png` are
//!   not e-mail addresses.
//! - Bearer tokens need 8+ characters and a digit or symbol (or 20+ characters), so prose such
//!   as "Bearer authentication" is not a token.

use std::net::Ipv6Addr;

use regex::{Regex, RegexSet, RegexSetBuilder};
use regex_automata::{Input, meta};

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Phone,
    Card,
    Ssn,
    Iban,
    Ipv4,
    Ipv6,
    DateOfBirth,
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    SlackToken,
    SlackWebhook,
    StripeKey,
    GoogleApiKey,
    Jwt,
    PrivateKey,
    UrlCredentials,
    BearerToken,
    /// A value under a secret-looking key name (`password=...`, `api_key: ...`).
    SecretField,
    /// A person's name: under a name-like key, or found in free text by the gazetteer.
    Name,
    /// A street address (house number, street, unit), or a value under an address key.
    Address,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 22] = [
        Kind::Email,
        Kind::Phone,
        Kind::Card,
        Kind::Ssn,
        Kind::Iban,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::DateOfBirth,
        Kind::AwsAccessKey,
        Kind::AwsSecretKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::SlackWebhook,
        Kind::StripeKey,
        Kind::GoogleApiKey,
        Kind::Jwt,
        Kind::PrivateKey,
        Kind::UrlCredentials,
        Kind::BearerToken,
        Kind::SecretField,
        Kind::Name,
        Kind::Address,
    ];

    /// The stable snake_case name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
            Kind::Iban => "iban",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::DateOfBirth => "date_of_birth",
            Kind::AwsAccessKey => "aws_access_key",
            Kind::AwsSecretKey => "aws_secret_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::SlackWebhook => "slack_webhook",
            Kind::StripeKey => "stripe_key",
            Kind::GoogleApiKey => "google_api_key",
            Kind::Jwt => "jwt",
            Kind::PrivateKey => "private_key",
            Kind::UrlCredentials => "url_credentials",
            Kind::BearerToken => "bearer_token",
            Kind::SecretField => "secret_field",
            Kind::Name => "name",
            Kind::Address => "address",
        }
    }

    /// True for credentials, keys and tokens (and secret fields); false for personal data.
    pub fn is_secret(self) -> bool {
        !matches!(
            self,
            Kind::Email
                | Kind::Phone
                | Kind::Card
                | Kind::Ssn
                | Kind::Iban
                | Kind::Ipv4
                | Kind::Ipv6
                | Kind::DateOfBirth
                | Kind::Name
                | Kind::Address
        )
    }

    /// Whether the mask shows nothing of the raw value (or only a fixed type prefix).
    fn has_opaque_mask(self) -> bool {
        matches!(
            self,
            Kind::SecretField
                | Kind::AwsSecretKey
                | Kind::BearerToken
                | Kind::UrlCredentials
                | Kind::Jwt
                | Kind::PrivateKey
        )
    }

    /// How specific the kind is, for findings with identical spans (higher wins).
    fn specificity(self) -> u8 {
        match self {
            Kind::SecretField => 0,
            Kind::BearerToken => 1,
            Kind::Email
            | Kind::Phone
            | Kind::Card
            | Kind::Ssn
            | Kind::Iban
            | Kind::Ipv4
            | Kind::Ipv6
            | Kind::DateOfBirth
            | Kind::Name
            | Kind::Address => 2,
            Kind::UrlCredentials | Kind::AwsSecretKey => 3,
            Kind::AwsAccessKey
            | Kind::GithubToken
            | Kind::SlackToken
            | Kind::SlackWebhook
            | Kind::StripeKey
            | Kind::GoogleApiKey
            | Kind::Jwt
            | Kind::PrivateKey => 4,
        }
    }
}

/// One sensitive value found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// Byte offset of the first byte of the raw value in the input.
    pub start: usize,
    /// Byte offset one past the raw value.
    pub end: usize,
    /// Short stable name of the rule that found it, e.g. `regex:card+luhn` or `key-hint`.
    pub detector: &'static str,
}

/// Key names whose values are masked whatever they look like (matched case- and
/// separator-insensitively, as substrings: `db_password`, `X-API-KEY`). Configurable.
pub const DEFAULT_HINTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "ssn",
    "card",
    "iban",
    "dob",
    "access_key",
    "auth",
    "session",
];

/// Normalised names that mark a date of birth.
const BIRTH_HINTS: &[&str] = &["dob", "dateofbirth", "birthdate", "birthday"];

/// Normalised key fragments that mark an AWS secret access key.
const AWS_SECRET_HINTS: &[&str] = &["awssecret", "secretaccesskey"];

/// The alternatives of the combined pattern, in preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alt {
    Pem,
    Jwt,
    SlackWebhook,
    UrlCredentials,
    Github,
    Slack,
    Stripe,
    Google,
    AwsKey,
    Bearer,
    KeyValue,
    Email,
    Iban,
    Ipv6,
    Card,
    Ssn,
    PhoneIntl,
    PhoneNanp,
    PhoneTrunk,
    Ipv4,
    /// Digit groups of any national format (`699 956 915`, `(37) 788-063`), validated by
    /// libphonenumber's metadata for the configured regions.
    PhoneNational,
}

const PEM: &str = r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----";
const JWT: &str = r"(?-u:\b)eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*";
const SLACK_WEBHOOK: &str =
    r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+";
const URL_CREDENTIALS: &str = concat!(
    r"(?:^|[^A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://",
    r#"[^ \t\r\n:/?#@"'<>]*(?:@[^ \t\r\n:/?#@"'<>]+)?"#,
    r#":[^ \t\r\n/?#@"'<>]+@"#
);
const GITHUB: &str = r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})";
const SLACK: &str = r"(?-u:\b)xox[baprs]-[A-Za-z0-9-]{10,}";
const STRIPE: &str = r"(?-u:\b)(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}";
const GOOGLE: &str = r"(?-u:\b)AIza[0-9A-Za-z_-]{35}";
const AWS_KEY: &str = r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?-u:\b)";
const BEARER: &str = r"(?-u:\b)[Bb](?:earer|EARER)[ \t]+";
const EMAIL: &str = concat!(
    r"(?:^|[^A-Za-z0-9._%+-])[A-Za-z0-9_][A-Za-z0-9._%+-]*@",
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?-u:\b)"
);
const IBAN: &str = concat!(
    r"(?-u:\b)[A-Z]{2}[0-9]{2}",
    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?-u:\b)"
);
const CARD: &str = concat!(
    r"(?-u:\b)(?:[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}(?:[ -][0-9]{1,4}(?:[ -][0-9]{1,3})?)?",
    r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}|[0-9]{12,19})(?-u:\b)"
);
const SSN: &str = r"(?-u:\b)[0-9]{3}[ -][0-9]{2}[ -][0-9]{4}(?-u:\b)";
const PHONE_INTL: &str = r"\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}";
const PHONE_NANP: &str = concat!(
    r"(?:(?-u:\b)(?:1[ .-])?[0-9]{3}[ .-]|\([0-9]{3}\)[ .-]?)",
    r"[0-9]{3}[ .-][0-9]{4}(?:x[0-9]{1,6})?(?-u:\b)"
);
const PHONE_TRUNK: &str = r"(?-u:\b)0[0-9]{1,4}(?:[ -][0-9]{2,4}){2,3}(?-u:\b)";
const IPV4: &str = r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)";
const PHONE_NATIONAL: &str = concat!(
    r"(?:(?:(?-u:\b)[0-9]{1,5}[ .-]|\([0-9]{1,5}\)[ .-]?)",
    r"(?:[0-9]{2,5}[ .-]){0,4}[0-9]{2,8}(?:x[0-9]{1,6})?|(?-u:\b)[0-9]{7,15})(?-u:\b)"
);

/// Regions whose national phone formats are recognised when none are configured.
pub const DEFAULT_PHONE_REGIONS: &[&str] = &["US"];

/// The alternatives that match a whole token (a key may be one).
fn is_token_alt(alt: Alt) -> bool {
    matches!(
        alt,
        Alt::Jwt | Alt::Github | Alt::Slack | Alt::Stripe | Alt::Google | Alt::AwsKey
    )
}

/// The IPv6 alternative: full form, full form with an embedded IPv4 tail, `::`-compressed forms.
fn ipv6_pattern() -> String {
    let g = "[0-9A-Fa-f]{1,4}";
    let v4 = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}";
    format!(
        "(?-u:\\b)(?:(?:{g}:){{7}}{g}|(?:{g}:){{6}}{v4}|{g}(?::{g}){{0,6}}::(?:(?:{g}:){{0,5}}(?:{v4}|{g}))?)\
         |(?-u:\\B)::(?:{g}:){{0,5}}(?:{v4}|{g})"
    )
}

/// The key-value alternative: the character before the key, an optional quote, a key containing
/// one of `hints` (case- and separator-insensitive), an optional closing quote, `:`/`=`/`:=`/`=>`,
/// and an optional opening quote of the value. The match ends where the value starts;
/// [`split_key_value`] takes it apart.
fn key_value_pattern(hints: &[String]) -> String {
    let flexible: Vec<String> = hints
        .iter()
        .map(|hint| {
            hint.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        regex::escape(c.encode_utf8(&mut [0; 4]))
                    }
                })
                .collect::<Vec<_>>()
                .join("[-_. ]*")
        })
        .collect();
    format!(
        r#"(?:^|[^A-Za-z0-9_.-])(?:\\?["'])?[A-Za-z0-9_.-]*(?:{})[A-Za-z0-9_.-]*(?:\\?["'])?[ \t]*(?::=|=>|=|:)[ \t]*(?:\\?["'])?"#,
        flexible.join("|")
    )
}

/// Lower-cases and drops `_ - . space`.
fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Finds sensitive values in text. Compiled once; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Detector {
    /// All alternatives as one multi-pattern regex, leftmost-first in preference order (the
    /// same matches as their alternation): the single pass over the text, and each match says
    /// which alternative it came from.
    re: meta::Regex,
    /// The key-value alternative, searched in a pass of its own: its key words (each letter
    /// optionally followed by a separator) multiply the lazy DFA's states with those of the
    /// other alternatives when they are combined (a first pass over 430 KB of prose built states
    /// for about 190 million instructions; the two regexes apart, about 90 million).
    key_re: meta::Regex,
    /// The token alternatives, each anchored at both ends: whether a key is itself a token.
    which: RegexSet,
    /// The alternative of each pattern of `re`, in preference order.
    alts: Vec<Alt>,
    /// The alternative of each pattern of `which`.
    token_alts: Vec<Alt>,
    /// Normalised secret key hints.
    hints: Vec<String>,
    /// Normalised name-like keys ([`super::names::DEFAULT_NAME_KEYS`] by default).
    name_keys: Vec<String>,
    /// Regions national phone numbers are validated against, in order.
    phone_regions: Vec<(phonenumber::country::Id, u16)>,
    /// [`PHONE_NATIONAL`] alone: a national number at a position another candidate took.
    phone_re: Regex,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(DEFAULT_HINTS)
    }
}

impl Detector {
    /// A detector whose secret key hints are `hints` (normalised here: lower-cased, `_ - . space`
    /// dropped). Use [`Detector::default`] for the built-in list.
    pub fn new(hints: &[&str]) -> Detector {
        let mut hints: Vec<String> = hints
            .iter()
            .map(|h| normalise(h))
            .filter(|h| !h.is_empty())
            .collect();
        hints.sort();
        hints.dedup();

        // The pattern also looks for birth-date and AWS key names, whatever the hints are.
        let mut key_words: Vec<String> = hints.clone();
        key_words.extend(["birth", "dob"].iter().map(|s| s.to_string()));
        key_words.extend(AWS_SECRET_HINTS.iter().map(|s| s.to_string()));
        // Name and address keys (the value is checked in code).
        key_words.extend(
            [
                "name",
                "contact",
                "customer",
                "approver",
                "requester",
                "requested",
                "approved",
                "signed",
                "holder",
                "address",
                "adresse",
                "street",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        key_words.sort();
        key_words.dedup();

        let alternatives: Vec<(Alt, String)> = vec![
            (Alt::Pem, PEM.into()),
            (Alt::Jwt, JWT.into()),
            (Alt::SlackWebhook, SLACK_WEBHOOK.into()),
            (Alt::UrlCredentials, URL_CREDENTIALS.into()),
            (Alt::Github, GITHUB.into()),
            (Alt::Slack, SLACK.into()),
            (Alt::Stripe, STRIPE.into()),
            (Alt::Google, GOOGLE.into()),
            (Alt::AwsKey, AWS_KEY.into()),
            (Alt::Bearer, BEARER.into()),
            (Alt::Email, EMAIL.into()),
            (Alt::Iban, IBAN.into()),
            (Alt::Ipv6, ipv6_pattern()),
            (Alt::Card, CARD.into()),
            (Alt::Ssn, SSN.into()),
            (Alt::PhoneIntl, PHONE_INTL.into()),
            (Alt::PhoneNanp, PHONE_NANP.into()),
            (Alt::PhoneTrunk, PHONE_TRUNK.into()),
            (Alt::Ipv4, IPV4.into()),
            (Alt::PhoneNational, PHONE_NATIONAL.into()),
        ];
        let patterns: Vec<&str> = alternatives.iter().map(|(_, p)| p.as_str()).collect();
        let build = |patterns: &[&str]| {
            meta::Regex::builder()
                .configure(
                    meta::Regex::config()
                        .nfa_size_limit(Some(64 << 20))
                        .hybrid_cache_capacity(32 << 20),
                )
                .build_many(patterns)
                .expect("the built-in detection pattern compiles")
        };
        let re = build(&patterns);
        let key_re = build(&[key_value_pattern(&key_words).as_str()]);
        let tokens: Vec<&(Alt, String)> = alternatives
            .iter()
            .filter(|(alt, _)| is_token_alt(*alt))
            .collect();
        let which = RegexSetBuilder::new(tokens.iter().map(|(_, p)| format!("^(?:{p})$")))
            .build()
            .expect("the built-in token patterns compile");
        Detector {
            re,
            key_re,
            which,
            token_alts: tokens.iter().map(|(alt, _)| *alt).collect(),
            alts: alternatives.iter().map(|(alt, _)| *alt).collect(),
            hints,
            name_keys: super::names::DEFAULT_NAME_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            phone_regions: vec![(phonenumber::country::Id::US, 1)],
            phone_re: Regex::new(PHONE_NATIONAL).expect("the phone pattern compiles"),
        }
    }

    /// Replaces the name-like keys (normalised here like hints).
    pub fn with_name_keys(mut self, keys: &[&str]) -> Detector {
        self.name_keys = keys
            .iter()
            .map(|k| normalise(k))
            .filter(|k| !k.is_empty())
            .collect();
        self
    }

    /// Sets the regions (ISO 3166 codes, `US`, `GB`, `DE`) whose national phone formats are
    /// recognised; the first is the default region. Unknown codes are an error.
    pub fn with_phone_regions(mut self, regions: &[&str]) -> Result<Detector, String> {
        self.phone_regions = regions
            .iter()
            .map(|r| {
                let region = r
                    .trim()
                    .to_ascii_uppercase()
                    .parse::<phonenumber::country::Id>()
                    .map_err(|_| format!("unknown phone region {r:?}"))?;
                let code = super::phone::region_code(region)
                    .ok_or_else(|| format!("no phone metadata for region {r:?}"))?;
                Ok::<_, String>((region, code))
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Whether a key names a person (`customer_name`, `lastName`, `contact`); `Some(true)` for
    /// a bare `name`, whose value must also look like a person's name.
    pub fn name_key(&self, key: &str) -> Option<bool> {
        super::names::name_key(&normalise(key), &self.name_keys)
    }

    /// Whether a key names a postal address (`address`, `street`, `billing_address`).
    pub fn is_address_key(&self, key: &str) -> bool {
        super::names::address_key(&normalise(key))
    }

    /// Non-overlapping findings sorted by start.
    ///
    /// Detection sees through default-ignorable code points (`sk_live_<U+200B>51H…`) and reads
    /// a line break or tab between two digit groups (`5500 0000\n0000 0004`, also the JSON
    /// escape `\n`) as a space; the findings still refer to the input.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let Some(view) = View::of(text) else {
            return self.find_plain(text);
        };
        let mut found = self.find_plain(&view.text);
        for f in &mut found {
            f.start = view.input_offset(f.start);
            f.end = view.input_offset(f.end - 1) + 1;
            // The last byte of a multi-byte character maps to its last byte: round up.
            while !text.is_char_boundary(f.end) {
                f.end += 1;
            }
        }
        found
    }

    fn find_plain(&self, text: &str) -> Vec<Finding> {
        let mut scan = Scan {
            text,
            bytes: text.as_bytes(),
            found: Vec::new(),
            no_phone_before: 0,
            values_until: 0,
        };
        // Keys first: a finding under a key ends at its value, which the second pass still
        // reads (a card number under `card:` is reported as a card).
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.key_re.search(&Input::new(text).span(pos..text.len())) else {
                break;
            };
            let resume = self.candidate(&mut scan, Alt::KeyValue, m.start(), m.end());
            pos = resume.max(next_char(text, m.start()));
            if pos > m.start() + 1 && is_delimiter(scan.bytes[pos - 1]) {
                pos -= 1;
            }
        }
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.re.search(&Input::new(text).span(pos..text.len())) else {
                break;
            };
            let alt = self.alts[m.pattern().as_usize()];
            let resume = self.candidate(&mut scan, alt, m.start(), m.end());
            pos = resume.max(next_char(text, m.start()));
            // Key-value, e-mail and URL matches include the delimiter before them: resuming just
            // after a delimiter (the value after `key: `), search from it, if that still moves on.
            if pos > m.start() + 1 && is_delimiter(scan.bytes[pos - 1]) {
                pos -= 1;
            }
        }
        for (start, end) in super::names::find_names(text) {
            scan.push(Kind::Name, start, end, "gazetteer:name");
        }
        for (start, end) in super::names::find_addresses(text) {
            scan.push(Kind::Address, start, end, "street-address");
        }
        resolve(scan.found)
    }

    /// The text with every finding replaced by [`mask`]`(kind, raw)`; the findings refer to the
    /// input.
    pub fn mask(&self, text: &str) -> (String, Vec<Finding>) {
        let findings = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in &findings {
            out.push_str(&text[last..f.start]);
            mask_into(f.kind, &text[f.start..f.end], &mut out);
            last = f.end;
        }
        out.push_str(&text[last..]);
        (out, findings)
    }

    /// Whether a key name (JSON key, or the key of `key=value`) is a secret hint: its normalised
    /// form (lower-cased, `_ - . space` dropped) contains a normalised hint, subject to the
    /// exclusions listed in the module documentation.
    pub fn is_secret_key(&self, key: &str) -> bool {
        let words = Words::of(key);
        !words.is_benign() && self.hints.iter().any(|h| words.contains_hint(h))
    }

    /// Keys that mark a date of birth (`dob`, `date_of_birth`, `birthdate`, `birthday`,
    /// `birth_date`, also inside longer keys such as `customer.birthDate`).
    pub fn is_birth_date_key(&self, key: &str) -> bool {
        let words = Words::of(key);
        !words.is_benign() && BIRTH_HINTS.iter().any(|h| words.contains_hint(h))
    }

    /// The token detector whose whole pattern `text` matches, if any.
    fn token_alt(&self, text: &str) -> Option<Alt> {
        // Every token pattern starts with one of these literals and is 10 bytes or longer.
        const PREFIXES: &[&str] = &["eyJ", "gh", "xox", "sk_", "pk_", "rk_", "AIza", "A"];
        if text.len() < 10 || !PREFIXES.iter().any(|p| text.starts_with(p)) {
            return None;
        }
        self.which
            .matches(text)
            .iter()
            .map(|i| self.token_alts[i])
            .next()
    }

    /// Validates one candidate, records findings, and returns where the scan resumes.
    fn candidate(&self, scan: &mut Scan<'_>, alt: Alt, start: usize, end: usize) -> usize {
        let b = scan.bytes;
        // Where to resume when the candidate is rejected and something else may start inside it.
        let retry = next_char(scan.text, start);
        match alt {
            Alt::Pem => {
                let block_end = pem_block_end(scan.text, end);
                scan.push(Kind::PrivateKey, start, block_end, "regex:pem-block");
                block_end
            }
            Alt::Jwt => scan.push_at(Kind::Jwt, start, end, "regex:jwt"),
            Alt::SlackWebhook => {
                scan.push_at(Kind::SlackWebhook, start, end, "regex:slack-webhook")
            }
            Alt::Github => scan.push_at(Kind::GithubToken, start, end, "regex:github-token"),
            Alt::Slack => scan.push_at(Kind::SlackToken, start, end, "regex:slack-token"),
            Alt::Stripe => scan.push_at(Kind::StripeKey, start, end, "regex:stripe-key"),
            Alt::Google => {
                // Exactly 35 characters after the prefix: a longer run is something else.
                if !b.get(end).is_some_and(|&c| is_base64url(c)) {
                    scan.push(Kind::GoogleApiKey, start, end, "regex:google-api-key");
                }
                end
            }
            Alt::AwsKey => {
                if !scan.text[start..end].contains("EXAMPLE") {
                    scan.push(Kind::AwsAccessKey, start, end, "regex:aws-access-key");
                }
                end
            }
            Alt::UrlCredentials => {
                // `scheme://user:password@`: the user has no `:`, the password no `@`.
                let userinfo = start + scan.text[start..end].find("://").map_or(0, |i| i + 3);
                let colon = userinfo + scan.text[userinfo..end].find(':').unwrap_or(0);
                scan.push(
                    Kind::UrlCredentials,
                    colon + 1,
                    end - 1,
                    "regex:url-credentials",
                );
                if is_email_shape(&scan.text[userinfo..colon]) {
                    scan.push(Kind::Email, userinfo, colon, "regex:url-credentials+email");
                }
                end
            }
            Alt::Bearer => {
                if let Some(token_end) = bearer_token_end(b, end) {
                    scan.push(Kind::BearerToken, end, token_end, "regex:bearer");
                }
                end
            }
            Alt::KeyValue => {
                let before = scan.found.len();
                self.key_value(scan, start, end);
                // The "key" may itself be a token whose letters spell a hint (`ghp_…Pwd…: x`):
                // it is checked like any other candidate.
                let (key_start, key, _) = split_key_value(scan.text, start, end);
                if let Some(alt) = self.token_alt(key) {
                    self.candidate(scan, alt, key_start, key_start + key.len());
                }
                // A "key" that names nothing sensitive may start a token: look again just
                // after its start.
                if scan.found.len() == before {
                    retry
                } else {
                    end
                }
            }
            // A rejected e-mail-shaped token is skipped whole (retrying at every dot of a long
            // local part would be quadratic).
            Alt::Email => {
                let start =
                    skip_delimiter(scan.text, start, |c| c.is_ascii_alphanumeric() || c == b'_');
                if email_ok(scan.text, end) {
                    scan.push(Kind::Email, start, end, "regex:email+domain");
                }
                end
            }
            Alt::Iban => match iban_end(scan.text, start, end) {
                Some(e) => scan.push_at(Kind::Iban, start, e, "regex:iban+mod97"),
                None => {
                    // The digit groups of an IBAN-shaped token are not phone numbers (a card
                    // number inside it is still a card number).
                    scan.no_phone_before = end;
                    retry
                }
            },
            Alt::Ipv6 => {
                if ipv6_ok(scan.text, start, end) {
                    scan.push_at(Kind::Ipv6, start, end, "regex:ipv6+parse")
                } else {
                    retry
                }
            }
            Alt::Card => match card_end(b, start, end) {
                Some(e) => scan.push_at(Kind::Card, start, e, "regex:card+luhn"),
                None => self.phone_instead(scan, start).unwrap_or(retry),
            },
            Alt::Ssn => {
                // With spaces, a neighbouring number group makes it part of a longer number.
                let spaced = b[start + 3] == b' ';
                let in_number = spaced
                    && ((start >= 2 && b[start - 1] == b' ' && b[start - 2].is_ascii_digit())
                        || (b.get(end) == Some(&b' ')
                            && b.get(end + 1).is_some_and(u8::is_ascii_digit)));
                if !in_number && !glued(b, start, end) && ssn_ok(&b[start..end]) {
                    scan.push_at(Kind::Ssn, start, end, "regex:ssn+area")
                } else {
                    self.phone_instead(scan, start).unwrap_or(retry)
                }
            }
            Alt::PhoneIntl | Alt::PhoneNanp | Alt::PhoneTrunk | Alt::PhoneNational
                if start < scan.no_phone_before =>
            {
                retry
            }
            Alt::PhoneNational => match self.national_phone_end(scan, start, end, true) {
                Some(e) => scan.push_at(Kind::Phone, start, e, "libphonenumber"),
                None => retry,
            },
            Alt::PhoneIntl | Alt::PhoneNanp | Alt::PhoneTrunk => {
                match phone_end(b, start, end, alt) {
                    Some(e) => scan.push_at(Kind::Phone, start, e, "regex:phone"),
                    None if alt == Alt::PhoneIntl => {
                        match self.national_phone_end(scan, start, end, true) {
                            Some(e) => scan.push_at(Kind::Phone, start, e, "libphonenumber"),
                            None => retry,
                        }
                    }
                    None => self.phone_instead(scan, start).unwrap_or(retry),
                }
            }
            Alt::Ipv4 => {
                if ipv4_ok(b, start, end) {
                    scan.push_at(Kind::Ipv4, start, end, "regex:ipv4+octets")
                } else {
                    retry
                }
            }
        }
    }

    /// A national phone number starting where another numeric candidate was rejected (a
    /// Luhn-invalid 4-4-4 group can be a phone number): where the scan resumes after it.
    fn phone_instead(&self, scan: &mut Scan<'_>, start: usize) -> Option<usize> {
        if start < scan.no_phone_before {
            return None;
        }
        let m = self.phone_re.find_at(scan.text, start)?;
        if m.start() != start {
            return None;
        }
        let end = self.national_phone_end(scan, start, m.end(), false)?;
        Some(scan.push_at(Kind::Phone, start, end, "libphonenumber"))
    }

    /// The end of a phone number validated by libphonenumber in `start..end` (the whole
    /// candidate, or, when `shorten`, the candidate without its last one or two groups).
    fn national_phone_end(
        &self,
        scan: &Scan<'_>,
        start: usize,
        end: usize,
        shorten: bool,
    ) -> Option<usize> {
        let b = scan.bytes;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b"_:./".contains(&b[start - 1]))
            || in_digit_groups(b, start)
        {
            return None;
        }
        // Dates are not phone numbers (`2024-01-15`, `15.01.2024`).
        if iso_date(b, start).is_some() || numeric_date(b, start).is_some() {
            return None;
        }
        // A decimal number (`31.01875`) is not a phone number.
        let separators = b[start..end].iter().filter(|c| !c.is_ascii_digit()).count();
        if separators == 1 && b[start..end].contains(&b'.') {
            return None;
        }
        // A number written without separators (`0250582323`) only after a phone word.
        if b[start..end].iter().all(u8::is_ascii_digit) && !phone_context(b, start) {
            return None;
        }
        let mut end = end;
        for _ in 0..if shorten { 3 } else { 1 } {
            let candidate = &scan.text[start..end];
            let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
            let clean_after = (!b
                .get(end)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
                || extension_end(b, end) > end)
                && !glued(b, start, end);
            if (7..=15).contains(&digits) && clean_after && self.valid_phone(candidate) {
                return Some(end);
            }
            // Drop the last group.
            let cut = candidate.rfind([' ', '.', '-'])?;
            end = start + cut;
        }
        None
    }

    fn valid_phone(&self, candidate: &str) -> bool {
        // Placeholders: one digit repeated.
        let mut digits = candidate.bytes().filter(u8::is_ascii_digit);
        let first = digits.next();
        if digits.all(|d| Some(d) == first) {
            return false;
        }
        if candidate.starts_with('+') {
            return super::phone::valid_international(candidate);
        }
        self.phone_regions
            .iter()
            .any(|&(region, code)| super::phone::valid_national(region, code, candidate))
    }

    /// A `key: value` candidate whose key contains a hint word: decides what the value is.
    fn key_value(&self, scan: &mut Scan<'_>, start: usize, end: usize) {
        let text = scan.text;
        // Inside a value already recorded.
        if start < scan.values_until {
            return;
        }
        let (key_start, key, quote) = split_key_value(text, start, end);
        // A host name (`//auth.example.com:443`) or URL path (`/token:refresh`), not a key.
        if key_start > 0 && matches!(scan.bytes[key_start - 1], b'/' | b'@') {
            return;
        }
        let words = Words::of(key);
        let benign = words.is_benign();
        let secret = !benign && self.hints.iter().any(|h| words.contains_hint(h));
        let birth = !benign && BIRTH_HINTS.iter().any(|h| words.contains_hint(h));
        let aws_named = AWS_SECRET_HINTS
            .iter()
            .any(|h| words.normalised.contains(h));
        if !(secret || birth || aws_named) {
            let name = super::names::name_key(&words.normalised, &self.name_keys);
            let address = super::names::address_key(&words.normalised);
            if name.is_none() && !address {
                return;
            }
            let value_end = value_end(scan.bytes, end, quote);
            let value = &text[end..value_end];
            if value_end <= end || is_inert_value(value, quote.is_none()) || is_reference(value) {
                return;
            }
            if address {
                // Unquoted, a value after `address:` in prose is a word, not an address.
                if quote.is_none() {
                    return;
                }
                scan.push(Kind::Address, end, value_end, "key-hint:address");
            } else if name == Some(false) || super::names::looks_like_person_name(value) {
                scan.push(Kind::Name, end, value_end, "key-hint:name");
            } else {
                return;
            }
            scan.values_until = value_end;
            return;
        }

        let mut value_start = end;
        if birth && let Some(date_end) = date_end(scan.bytes, value_start) {
            scan.push(
                Kind::DateOfBirth,
                value_start,
                date_end,
                "key-hint:date-of-birth",
            );
            scan.values_until = date_end;
            return;
        }
        if secret {
            value_start = skip_auth_scheme(scan.bytes, value_start);
        }
        if is_reference(&text[value_start..]) {
            return;
        }
        let value_end = value_end(scan.bytes, value_start, quote);
        if value_end <= value_start {
            return;
        }
        let value = &text[value_start..value_end];
        if is_inert_value(value, quote.is_none()) {
            return;
        }
        scan.values_until = value_end;
        if is_aws_secret_shape(value, aws_named) {
            // AWS's documented example keys stay visible.
            if !value.contains("EXAMPLE") {
                scan.push(
                    Kind::AwsSecretKey,
                    value_start,
                    value_end,
                    "key-hint:aws-secret-key",
                );
            }
        } else if secret {
            scan.push(Kind::SecretField, value_start, value_end, "key-hint");
        }
    }
}

/// The text detection reads when the input hides a value: default-ignorable code points
/// (zero-width spaces, joiners, soft hyphens, bidi controls) dropped, and a run of blanks with a
/// line break or tab (or the JSON escapes `\n`, `\r`, `\t`) between two digits read as one
/// space. It is built from runs copied whole, and maps an offset back through those runs.
struct View {
    text: String,
    /// `(view offset, input offset)` where each run starts, in order: byte `i` of `text` is
    /// input byte `input + (i - view)` of the last run starting at or before `i`.
    runs: Vec<(usize, usize)>,
}

impl View {
    /// `None` when the input needs no change (the common case: no copy).
    fn of(input: &str) -> Option<View> {
        let b = input.as_bytes();
        // A gap starts after the digit before the blanks that precede a break or escape.
        let gap_at = |i: usize| {
            let blanks = b[..i]
                .iter()
                .rev()
                .take_while(|&&c| matches!(c, b' ' | b'\r' | b'\t'))
                .count();
            digit_gap(b, i - blanks).is_some()
        };
        let split = memchr::memchr3_iter(b'\n', b'\t', b'\\', b).any(gap_at);
        let hidden_char = !input.is_ascii()
            && input
                .char_indices()
                .any(|(_, c)| !c.is_ascii() && hidden(c));
        if !(split || hidden_char) {
            return None;
        }
        let mut text = String::with_capacity(input.len());
        let mut runs = vec![(0, 0)];
        // Start of the input run not copied yet.
        let mut copied = 0;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c < 0x80 {
                if matches!(c, b'\n' | b'\r' | b'\t' | b'\\' | b' ')
                    && let Some(end) = digit_gap(b, i)
                {
                    text.push_str(&input[copied..i]);
                    runs.push((text.len(), i));
                    text.push(' ');
                    runs.push((text.len(), end));
                    copied = end;
                    i = end;
                } else {
                    i += 1;
                }
                continue;
            }
            let ch = input[i..].chars().next().expect("inside the input");
            if hidden(ch) {
                text.push_str(&input[copied..i]);
                copied = i + ch.len_utf8();
                runs.push((text.len(), copied));
            }
            i += ch.len_utf8();
        }
        text.push_str(&input[copied..]);
        Some(View { text, runs })
    }

    /// The input offset of byte `at` of the view.
    fn input_offset(&self, at: usize) -> usize {
        let (view, input) = self.runs[self.runs.partition_point(|&(v, _)| v <= at) - 1];
        input + (at - view)
    }
}

/// Default-ignorable and bidi-control code points: invisible, so they may split a value.
fn hidden(c: char) -> bool {
    !c.is_ascii() && c != '\u{a0}' && crate::text::is_invisible(c)
}

/// A gap between two digits starting at `at`: blanks and line breaks (real or JSON-escaped)
/// with at least one line break or tab. Its end, if so.
fn digit_gap(b: &[u8], at: usize) -> Option<usize> {
    if at == 0 || !b[at - 1].is_ascii_digit() {
        return None;
    }
    let mut i = at;
    let mut breaks = false;
    while i < b.len() {
        match b[i] {
            b' ' => i += 1,
            b'\n' | b'\r' | b'\t' => {
                breaks = true;
                i += 1;
            }
            b'\\' if matches!(b.get(i + 1), Some(b'n' | b'r' | b't')) => {
                breaks = true;
                i += 2;
            }
            _ => break,
        }
        if i - at > 8 {
            return None;
        }
    }
    (breaks && b.get(i).is_some_and(u8::is_ascii_digit)).then_some(i)
}

/// Findings collected during one pass.
struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    found: Vec<Finding>,
    /// Phone candidates starting before this offset are ignored.
    no_phone_before: usize,
    /// End of the last value recorded under a key: keys inside it are part of that value (and
    /// parsing them again would make `token=token=token=...` quadratic).
    values_until: usize,
}

impl Scan<'_> {
    fn push(&mut self, kind: Kind, start: usize, end: usize, detector: &'static str) {
        // A phone number's extension (`x6988`, ` ext. 12`) is part of it.
        let end = if kind == Kind::Phone {
            extension_end(self.bytes, end)
        } else {
            end
        };
        debug_assert!(self.text.is_char_boundary(start) && self.text.is_char_boundary(end));
        if start < end {
            self.found.push(Finding {
                kind,
                start,
                end,
                detector,
            });
        }
    }

    /// Pushes and returns the end of the finding, the resume position after an accepted
    /// candidate.
    fn push_at(&mut self, kind: Kind, start: usize, end: usize, detector: &'static str) -> usize {
        self.push(kind, start, end, detector);
        self.found.last().map_or(end, |f| f.end.max(end))
    }
}

/// Splits a key-value match (` "api_key": "`, `&password=`, `{\\"token\\":\\"`) into the key
/// (its offset and text) and the opening quote of the value, if any (`"`, `'`, `\\"` or `\\'`).
fn split_key_value(text: &str, start: usize, end: usize) -> (usize, &str, Option<&str>) {
    let b = text.as_bytes();
    let is_quote = |c: u8| c == b'"' || c == b'\'';
    let skip_blanks_back = |mut e: usize| {
        while e > start && matches!(b[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        e
    };
    let mut e = end;
    let mut quote = None;
    if e > start && is_quote(b[e - 1]) {
        let q = if e - 1 > start && b[e - 2] == b'\\' {
            e - 2
        } else {
            e - 1
        };
        quote = Some(&text[q..e]);
        e = q;
    }
    e = skip_blanks_back(e);
    e -= if e >= start + 2 && matches!(&b[e - 2..e], b":=" | b"=>") {
        2
    } else {
        1
    };
    e = skip_blanks_back(e);
    if e > start && is_quote(b[e - 1]) {
        e -= 1;
        if e > start && b[e - 1] == b'\\' {
            e -= 1;
        }
    }
    let mut s = skip_delimiter(text, start, is_key_byte);
    if s < e && b[s] == b'\\' {
        s += 1;
    }
    if s < e && is_quote(b[s]) {
        s += 1;
    }
    (s, &text[s..e], quote)
}

/// An ASCII byte that can come before a key, an e-mail address or a URL scheme.
fn is_delimiter(c: u8) -> bool {
    c.is_ascii() && !c.is_ascii_alphanumeric() && !b"_.-+%".contains(&c)
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Skips the delimiter that a match includes before its first character (absent at the start of
/// the text).
fn skip_delimiter(text: &str, start: usize, is_first: impl Fn(u8) -> bool) -> usize {
    match text.as_bytes().get(start) {
        Some(&c) if !is_first(c) => next_char(text, start),
        _ => start,
    }
}

/// Keeps the findings non-overlapping: a container beats what it contains and an identical span
/// goes to the more specific kind. Partial overlaps (a hand-parsed value running into a pattern
/// match) merge into one finding over the union, so that no byte of either is left visible; the
/// merged finding takes the kind whose mask shows nothing of the value if either has one.
fn resolve(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(b.kind.specificity().cmp(&a.kind.specificity()))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        match kept.last_mut() {
            // Sorted: `last` starts no later, and is longer or more specific when starting
            // together, so `f` is contained in it or runs past its end.
            Some(last) if f.start < last.end => {
                if f.end > last.end {
                    let rank = |k: Kind| (k.has_opaque_mask(), k.specificity());
                    if rank(f.kind) > rank(last.kind) {
                        last.kind = f.kind;
                        last.detector = f.detector;
                    }
                    last.end = f.end;
                }
            }
            _ => kept.push(f),
        }
    }
    kept
}

fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

fn is_base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Whether a number is glued into a longer `-`/`.` chain (`ORD-123-45-6789`, a UUID group).
fn glued(b: &[u8], start: usize, end: usize) -> bool {
    let before =
        start >= 2 && matches!(b[start - 1], b'-' | b'.') && b[start - 2].is_ascii_alphanumeric();
    let after = matches!(b.get(end), Some(b'-' | b'.'))
        && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
    before || after
}

// ---------------------------------------------------------------------------------------------
// Key names

/// A key split into lower-cased words (at `_ - . space` and camelCase humps), concatenated.
struct Words {
    normalised: String,
    /// Byte ranges of the words in `normalised`.
    spans: Vec<(usize, usize)>,
}

impl Words {
    fn of(key: &str) -> Words {
        let chars: Vec<char> = key.chars().collect();
        let mut normalised = String::with_capacity(key.len());
        let mut spans = Vec::new();
        let mut word_start: Option<usize> = None;
        for (i, &c) in chars.iter().enumerate() {
            let separator = matches!(c, '_' | '-' | '.' | ' ');
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let hump = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => c.is_uppercase(),
                Some(p) if p.is_uppercase() => {
                    c.is_uppercase() && next.is_some_and(char::is_lowercase)
                }
                _ => false,
            };
            if (separator || hump)
                && let Some(s) = word_start.take()
            {
                spans.push((s, normalised.len()));
            }
            if !separator {
                word_start.get_or_insert(normalised.len());
                normalised.extend(c.to_lowercase());
            }
        }
        if let Some(s) = word_start {
            spans.push((s, normalised.len()));
        }
        Words { normalised, spans }
    }

    fn word(&self, i: usize) -> &str {
        let (s, e) = self.spans[i];
        &self.normalised[s..e]
    }

    /// Keys that name something about a secret rather than the secret (`token_type`,
    /// `max_tokens`, `password_length`).
    fn is_benign(&self) -> bool {
        const SUFFIXES: &[&str] = &[
            "type", "types", "count", "length", "name", "names", "url", "uri", "id", "ids",
        ];
        const LAST_WORDS: &[&str] = &[
            "size",
            "limit",
            "ttl",
            "timeout",
            "expiry",
            "expires",
            "expiration",
            "enabled",
            "required",
            "mode",
            "format",
            "version",
            "path",
            "file",
            "endpoint",
            "at",
        ];
        const FIRST_WORDS: &[&str] = &["max", "min", "num"];
        let n = self.spans.len();
        if n == 0 {
            return true;
        }
        SUFFIXES.iter().any(|s| self.normalised.ends_with(s))
            || (n > 1
                && (LAST_WORDS.contains(&self.word(n - 1)) || FIRST_WORDS.contains(&self.word(0))))
    }

    /// Whether `hint` (normalised) occurs in the key: anywhere, but short hints only at the start
    /// of a word, and never inside words like `author` or `tokenizer`.
    fn contains_hint(&self, hint: &str) -> bool {
        // Occurrences and words are both in order: walk them together.
        let mut words = self.spans.iter().peekable();
        self.normalised.match_indices(hint).any(|(at, _)| {
            while words.next_if(|(_, end)| *end <= at).is_some() {}
            let Some(&&(ws, we)) = words.peek() else {
                return false;
            };
            (hint.len() > 4 || ws == at) && !is_benign_word(&self.normalised[ws..we])
        })
    }
}

/// Words that contain a hint but name no secret.
fn is_benign_word(word: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "tokeniz", "tokenis", "secretar", "cardinal", "cardio", "cardiac",
    ];
    (word.starts_with("author") && !word.starts_with("authoriz") && !word.starts_with("authoris"))
        || PREFIXES.iter().any(|p| word.starts_with(p))
}

// ---------------------------------------------------------------------------------------------
// Values after a key

/// Skips an HTTP auth scheme word (`Bearer `, `Basic `, `Token `, `Digest `) at `at`.
fn skip_auth_scheme(b: &[u8], at: usize) -> usize {
    const SCHEMES: &[&[u8]] = &[b"bearer", b"basic", b"token", b"digest"];
    for scheme in SCHEMES {
        let Some(word) = b.get(at..at + scheme.len()) else {
            continue;
        };
        if word.eq_ignore_ascii_case(scheme) {
            let mut i = at + scheme.len();
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if i > at + scheme.len() && b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                return i;
            }
        }
    }
    at
}

/// End of the value starting at `at`: the closing quote of a quoted value (`quote` is `"`, `'`,
/// `\"` or `\'`), otherwise the first whitespace or delimiter. Always a char boundary: values end
/// only before an ASCII byte or at the end of the text.
fn value_end(b: &[u8], at: usize, quote: Option<&str>) -> usize {
    let mut i = at;
    match quote.map(str::as_bytes) {
        Some([q]) => {
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'\n' | b'\r' => break,
                    c if c == *q => break,
                    _ => i += 1,
                }
            }
        }
        Some([b'\\', q]) => {
            while i < b.len() {
                match b[i] {
                    b'\\' if b.get(i + 1) == Some(q) => break,
                    b'\\' => i += 2,
                    b'\n' | b'\r' => break,
                    _ => i += 1,
                }
            }
        }
        _ => {
            while i < b.len()
                && !b[i].is_ascii_whitespace()
                && !matches!(
                    b[i],
                    b'&' | b','
                        | b';'
                        | b'"'
                        | b'\''
                        | b'<'
                        | b'>'
                        | b'{'
                        | b'}'
                        | b'['
                        | b']'
                        | b'\\'
                )
            {
                i += 1;
            }
        }
    }
    i.min(b.len())
}

/// Values that are not secrets whatever the key says: JSON literals, comparisons, values that are
/// already masked.
fn is_inert_value(value: &str, unquoted: bool) -> bool {
    (unquoted
        && (matches!(
            value,
            "null" | "true" | "false" | "None" | "nil" | "undefined"
        ) || value.starts_with([':', '=', '>'])))
        || value.bytes().all(|c| c == b'*')
}

/// A reference to where a secret lives rather than the secret: `${{ secrets.X }}`, `${VAR}`,
/// `$(cat file)`, `$DB_PASSWORD` (`rest` is the text from the start of the value on).
fn is_reference(rest: &str) -> bool {
    if rest.starts_with("${") || rest.starts_with("$(") {
        return true;
    }
    let Some(name) = rest.strip_prefix('$') else {
        return false;
    };
    let name_len = name
        .bytes()
        .take_while(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        .count();
    name_len > 0
        && !name.as_bytes()[0].is_ascii_digit()
        && !name
            .as_bytes()
            .get(name_len)
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn is_aws_secret_shape(value: &str, aws_named: bool) -> bool {
    let b = value.as_bytes();
    if b.len() != 40 {
        return false;
    }
    if aws_named {
        return b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+' | b'='));
    }
    b.iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+'))
        && b.iter().any(|&c| matches!(c, b'/' | b'+'))
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
}

/// End of a bearer token starting at `at`, if it looks like one.
fn bearer_token_end(b: &[u8], at: usize) -> Option<usize> {
    let len = b[at..]
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || b"._~+/=-".contains(&c))
        .count();
    let token = &b[at..at + len];
    let plausible = token
        .iter()
        .any(|&c| c.is_ascii_digit() || !c.is_ascii_alphanumeric())
        || len >= 20;
    (len >= 8 && plausible).then_some(at + len)
}

// ---------------------------------------------------------------------------------------------
// Dates of birth

/// End of a date starting at `at`, in one of the accepted formats.
fn date_end(b: &[u8], at: usize) -> Option<usize> {
    iso_date(b, at)
        .or_else(|| numeric_date(b, at))
        .or_else(|| month_first_date(b, at))
        .or_else(|| day_first_date(b, at))
}

/// A run of `min..=max` ASCII digits at `at`: (value, end).
fn number(b: &[u8], at: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let len = b
        .get(at..)?
        .iter()
        .take(max + 1)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if len < min || len > max {
        return None;
    }
    let value = b[at..at + len]
        .iter()
        .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
    Some((value, at + len))
}

fn valid_month_day(month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// `1990-01-31`, `1990/01/31`, `1990.01.31`.
fn iso_date(b: &[u8], at: usize) -> Option<usize> {
    let (_, i) = number(b, at, 4, 4)?;
    let sep = *b.get(i).filter(|c| matches!(c, b'-' | b'/' | b'.'))?;
    let (month, i) = number(b, i + 1, 1, 2)?;
    (b.get(i) == Some(&sep)).then_some(())?;
    let (day, i) = number(b, i + 1, 1, 2)?;
    valid_month_day(month, day).then_some(i)
}

/// `31/01/1990`, `01/31/1990`, `31.01.1990`, `31-01-1990`.
fn numeric_date(b: &[u8], at: usize) -> Option<usize> {
    let (first, i) = number(b, at, 1, 2)?;
    let sep = *b.get(i).filter(|c| matches!(c, b'-' | b'/' | b'.'))?;
    let (second, i) = number(b, i + 1, 1, 2)?;
    (b.get(i) == Some(&sep)).then_some(())?;
    let (_, i) = number(b, i + 1, 4, 4)?;
    (valid_month_day(second, first) || valid_month_day(first, second)).then_some(i)
}

/// A month name (`Jan`, `Jan.`, `January`, `Sept`) at `at`: its end.
fn month_name(b: &[u8], at: usize) -> Option<usize> {
    const MONTHS: &[&str] = &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let len = b
        .get(at..)?
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let word = std::str::from_utf8(&b[at..at + len])
        .ok()?
        .to_ascii_lowercase();
    let known = len >= 3 && MONTHS.iter().any(|m| m.starts_with(&word));
    let end = at + len;
    known.then_some(if b.get(end) == Some(&b'.') {
        end + 1
    } else {
        end
    })
}

fn spaces(b: &[u8], at: usize) -> usize {
    at + b[at.min(b.len())..]
        .iter()
        .take_while(|&&c| c == b' ')
        .count()
}

/// `Jan 31, 1990`, `January 31st 1990`.
fn month_first_date(b: &[u8], at: usize) -> Option<usize> {
    let i = month_name(b, at)?;
    let j = spaces(b, i);
    (j > i).then_some(())?;
    let (day, mut i) = number(b, j, 1, 2)?;
    if let Some(suffix) = b.get(i..i + 2)
        && matches!(suffix, b"st" | b"nd" | b"rd" | b"th")
    {
        i += 2;
    }
    if b.get(i) == Some(&b',') {
        i += 1;
    }
    let j = spaces(b, i);
    (j > i && (1..=31).contains(&day)).then_some(())?;
    number(b, j, 4, 4).map(|(_, end)| end)
}

/// `31 Jan 1990`, `31 January, 1990`.
fn day_first_date(b: &[u8], at: usize) -> Option<usize> {
    let (day, i) = number(b, at, 1, 2)?;
    let j = spaces(b, i);
    (j > i && (1..=31).contains(&day)).then_some(())?;
    let mut i = month_name(b, j)?;
    if b.get(i) == Some(&b',') {
        i += 1;
    }
    let j = spaces(b, i);
    (j > i).then_some(())?;
    number(b, j, 4, 4).map(|(_, end)| end)
}

// ---------------------------------------------------------------------------------------------
// Validators

fn pem_block_end(text: &str, header_end: usize) -> usize {
    let b = text.as_bytes();
    // The body: base64, whitespace, `\n` escapes, encryption headers, the footer itself.
    let body_len = b[header_end..]
        .iter()
        .take_while(|&&c| {
            c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || b"+/=\\:-,".contains(&c)
        })
        .count();
    let body = &text[header_end..header_end + body_len];
    if let Some(i) = body.find("-----END ") {
        let label = i + "-----END ".len();
        if let Some(j) = body[label..].find("-----") {
            return header_end + label + j + "-----".len();
        }
    }
    // No footer (a truncated key): mask the body.
    header_end + body.trim_end().len()
}

fn email_ok(text: &str, end: usize) -> bool {
    const FILE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp"];
    let b = text.as_bytes();
    // `git@github.com:org/repo.git` is a git remote.
    if b.get(end) == Some(&b':') && b.get(end + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
        return false;
    }
    let tld = &text[text[..end].rfind('.').map_or(end, |i| i + 1)..end];
    !FILE_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e))
}

/// `local@domain.tld`, for the user part of URL credentials.
fn is_email_shape(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !local.is_empty()
        && local
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c))
        && !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
}

pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Digits of a candidate whose non-digit bytes are all the same separator.
fn digits_with_one_separator(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut sep = None;
    for &c in s {
        if c.is_ascii_digit() {
            *out.get_mut(n)? = c - b'0';
            n += 1;
        } else if *sep.get_or_insert(c) != c {
            return None;
        }
    }
    Some(n)
}

/// The card number in a candidate: all of it, or the first four groups of a 4-4-4-4-3 candidate
/// (a 16-digit card followed by a short number).
fn card_end(b: &[u8], start: usize, end: usize) -> Option<usize> {
    // The tail of a longer run of digit groups (`1234 5678 9012 3456` read from `5678`).
    if in_digit_groups(b, start)
        && b[start - 1] == b[start + 4]
        && b[..start - 1]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .count()
            == 4
    {
        return None;
    }
    let grouped =
        end - start > 19 && matches!(b[start + 4], b' ' | b'-') && b[start + 19] == b[start + 4];
    let sixteen = grouped.then_some(start + 19);
    [Some(end), sixteen]
        .into_iter()
        .flatten()
        .find(|&e| !glued(b, start, e) && card_ok(&b[start..e]))
}

/// Whether a phone word (`phone`, `tel`, `call`, `mobile`, `fax`, …) ends at most 24 bytes before
/// `at`, in any case.
fn phone_context(b: &[u8], at: usize) -> bool {
    const WORDS: &[&[u8]] = &[
        b"phone",
        b"tel",
        b"call",
        b"mobile",
        b"cell",
        b"fax",
        b"handy",
        b"movil",
        b"cellulare",
        b"gsm",
        b"sms",
        b"whatsapp",
        b"mob",
        b"ring",
        b"contact",
    ];
    let window = &b[at.saturating_sub(24)..at];
    WORDS
        .iter()
        .any(|w| window.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w)))
}

/// The end of a phone extension at `at` (`x6988`, ` ext. 12`, ` ext 12`), or `at`.
fn extension_end(b: &[u8], at: usize) -> usize {
    let rest = &b[at.min(b.len())..];
    let prefix = [&b"x"[..], b" ext. ", b" ext ", b" x", b"ext."]
        .into_iter()
        .find(|p| rest.starts_with(p))
        .map_or(0, <[u8]>::len);
    if prefix == 0 {
        return at;
    }
    let digits = rest[prefix..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let after = rest.get(prefix + digits);
    if (1..=6).contains(&digits) && !after.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        at + prefix + digits
    } else {
        at
    }
}

/// Whether `start` follows a digit group and a separator (`…1234 |5678`).
fn in_digit_groups(b: &[u8], start: usize) -> bool {
    if start < 2 || !matches!(b[start - 1], b' ' | b'-' | b'.') || !b[start - 2].is_ascii_digit() {
        return false;
    }
    let run = b[..start - 1]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let before = start - 1 - run;
    before == 0 || !(b[before - 1].is_ascii_alphanumeric() || b[before - 1] == b'_')
}

fn card_ok(s: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let Some(n) = digits_with_one_separator(s, &mut digits) else {
        return false;
    };
    let d = &digits[..n];
    let prefix = |len: usize| d[..len].iter().fold(0u32, |v, &x| v * 10 + u32::from(x));
    if !(12..=19).contains(&n) {
        return false;
    }
    // Issuer (IIN) ranges and lengths of every brand: Visa; Mastercard (51-55, 2221-2720);
    // Amex; Diners (300-305, 3095, 36, 38, 39; 14-19); JCB (35, 16-19; 1800/2131, 15);
    // Discover (6011, 644-649, 65; 16-19); UnionPay (62, 81; 16-19); Maestro (50, 56-69, 0604;
    // 12-19).
    let brand_ok = match d[0] {
        4 => matches!(n, 13 | 16 | 19),
        5 => match prefix(2) {
            51..=55 => n == 16,
            50 | 56..=59 => true,
            _ => false,
        },
        2 => (n == 16 && (2221..=2720).contains(&prefix(4))) || (n == 15 && prefix(4) == 2131),
        1 => n == 15 && prefix(4) == 1800,
        3 => match prefix(2) {
            34 | 37 => n == 15,
            30 => n >= 14 && ((300..=305).contains(&prefix(3)) || prefix(4) == 3095),
            36 | 38 | 39 => n >= 14,
            // JCB is 3528-3589; generators and test ranges use all of 35.
            35 => n >= 16,
            _ => false,
        },
        6 => true,
        8 => n >= 16 && prefix(2) == 81,
        // Maestro UK's old 0604 range.
        0 => prefix(4) == 604,
        _ => false,
    };
    brand_ok && luhn(d)
}

fn ssn_ok(s: &[u8]) -> bool {
    let mut digits = [0u8; 9];
    if digits_with_one_separator(s, &mut digits) != Some(9) {
        return false;
    }
    let part =
        |r: std::ops::Range<usize>| digits[r].iter().fold(0u32, |v, &x| v * 10 + u32::from(x));
    let (area, group, serial) = (part(0..3), part(3..5), part(5..9));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// The end of the longest valid phone number in a candidate, if any.
fn phone_end(b: &[u8], start: usize, end: usize, alt: Alt) -> Option<usize> {
    // Nothing alphanumeric right before (`a+1 555...`, `x555-...`) and no `-`/`.` chain.
    if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'+') {
        return None;
    }
    if glued(b, start, start) {
        return None;
    }
    // `0000 0000 0000` and the like are placeholders.
    let mut digit_bytes = b[start..end].iter().filter(|c| c.is_ascii_digit());
    let first = digit_bytes.next()?;
    if digit_bytes.all(|c| c == first) {
        return None;
    }
    // Digit runs: (end, digits so far), and the separators between runs.
    let mut runs: Vec<(usize, usize)> = Vec::with_capacity(8);
    let mut digits = 0;
    let mut separators_agree = true;
    let mut separator = None;
    for (i, &c) in b.iter().enumerate().take(end).skip(start) {
        if c.is_ascii_digit() {
            digits += 1;
            if !b[i + 1..end].first().is_some_and(u8::is_ascii_digit) {
                runs.push((i + 1, digits));
            }
        } else if matches!(c, b' ' | b'-' | b'.') {
            separators_agree &= *separator.get_or_insert(c) == c;
        }
    }
    let has_parens = b[start..end].contains(&b'(');
    let ok = |&(run_end, digits): &(usize, usize), runs_kept: usize| -> bool {
        let counts = match alt {
            Alt::PhoneIntl => (7..=15).contains(&digits),
            Alt::PhoneNanp => (has_parens || separators_agree) && (10..=11).contains(&digits),
            _ => separators_agree && runs_kept >= 3 && (9..=12).contains(&digits),
        };
        let opens = b[start..run_end].iter().filter(|&&c| c == b'(').count();
        let closes = b[start..run_end].iter().filter(|&&c| c == b')').count();
        counts && opens == closes && opens <= 1
    };
    runs.iter().enumerate().rev().find_map(|(i, run)| {
        // Include a closing parenthesis that directly follows the last run.
        let mut run_end = run.0;
        if b.get(run_end) == Some(&b')') && run_end < end {
            run_end += 1;
        }
        let candidate = (run_end, run.1);
        let clean_after = (!b
            .get(run_end)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            || extension_end(b, run_end) > run_end)
            && !glued(b, run_end, run_end);
        (ok(&candidate, i + 1) && clean_after).then_some(run_end)
    })
}

fn ipv4_ok(b: &[u8], start: usize, end: usize) -> bool {
    // Part of a longer dotted number (`1.2.3.4.5`) or a version.
    if start > 0 && b[start - 1] == b'.' {
        return false;
    }
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric) {
        return false;
    }
    b[start..end].split(|&c| c == b'.').all(|octet| {
        let value = octet
            .iter()
            .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        value <= 255 && (octet.len() == 1 || octet[0] != b'0')
    })
}

fn ipv6_ok(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let candidate = &text[start..end];
    if start > 0 && matches!(b[start - 1], b':' | b'.') || b[start..].starts_with(b":::") {
        return false;
    }
    let after = b.get(end).copied();
    if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b':' || c == b'_')
        || (after == Some(b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit))
    {
        return false;
    }
    if candidate.parse::<Ipv6Addr>().is_err() {
        return false;
    }
    if candidate.contains("::") {
        let groups = candidate.split(':').filter(|g| !g.is_empty()).count();
        let hex_digits = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
        groups >= 2 && hex_digits >= 5
    } else {
        true
    }
}

/// The IBAN in a candidate: the whole of it, or, for a grouped IBAN followed by more
/// upper-case groups, the longest prefix of whole groups that passes the check.
fn iban_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let mut end = end;
    loop {
        if iban_ok(&text[start..end]) {
            return Some(end);
        }
        end = start + text[start..end].rfind(' ')?;
    }
}

pub(super) fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|&c| c != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let country_ok = head[..2].iter().all(u8::is_ascii_uppercase);
    let check_ok = head[2..].iter().all(u8::is_ascii_digit);
    let remainder = tail.iter().chain(head).try_fold(0u32, |r, &c| match c {
        b'0'..=b'9' => Some((r * 10 + u32::from(c - b'0')) % 97),
        b'A'..=b'Z' => Some((r * 100 + u32::from(c - b'A') + 10) % 97),
        _ => None,
    });
    country_ok && check_ok && remainder == Some(1)
}

// ---------------------------------------------------------------------------------------------
// Masks

/// Format-preserving mask of one raw value of `kind`. Shows at most the hints of its kind (the
/// last four digits of a card, IBAN or SSN, the last two of a phone, a type prefix, the first
/// octet of an IP, the first characters and TLD of an e-mail) and never the rest of the value.
pub fn mask(kind: Kind, raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    mask_into(kind, raw, &mut out);
    out
}

pub(super) fn mask_into(kind: Kind, raw: &str, out: &mut String) {
    match kind {
        Kind::Email => mask_email(raw, out),
        Kind::Phone => mask_phone(raw, out),
        Kind::Card => keep_last_digits(raw, 4, 12, out),
        Kind::Ssn => keep_last_digits(raw, 4, 9, out),
        Kind::Iban => mask_iban(raw, out),
        Kind::Ipv4 => match raw.split_once('.') {
            Some((first, _))
                if (1..=3).contains(&first.len()) && first.bytes().all(|c| c.is_ascii_digit()) =>
            {
                out.push_str(first);
                out.push_str(".*.*.*");
            }
            _ => out.push_str("*.*.*.*"),
        },
        Kind::Ipv6 => match raw.split_once(':') {
            _ if raw.starts_with("::") => out.push_str("::****"),
            Some((first, _))
                if first.len() <= 4 && first.bytes().all(|c| c.is_ascii_hexdigit()) =>
            {
                out.push_str(first);
                out.push_str(":****");
            }
            _ => out.push_str("****"),
        },
        Kind::DateOfBirth => {
            out.extend(raw.chars().map(|c| {
                if matches!(c, '-' | '/' | '.' | ' ' | ',') {
                    c
                } else {
                    '*'
                }
            }));
        }
        Kind::AwsAccessKey
        | Kind::GithubToken
        | Kind::SlackToken
        | Kind::StripeKey
        | Kind::GoogleApiKey => {
            let keep = type_prefix_len(kind, raw);
            out.push_str(&raw[..keep]);
            out.extend(raw[keep..].chars().map(|_| '*'));
        }
        Kind::SlackWebhook => {
            const PREFIX: &str = "https://hooks.slack.com/services/";
            let rest = match raw.strip_prefix(PREFIX) {
                Some(rest) => {
                    out.push_str(PREFIX);
                    rest
                }
                None => raw,
            };
            out.extend(rest.chars().map(|c| if c == '/' { c } else { '*' }));
        }
        Kind::Jwt => out.push_str("[JWT]"),
        Kind::PrivateKey => out.push_str("[PRIVATE KEY]"),
        Kind::UrlCredentials | Kind::BearerToken => out.push_str("****"),
        Kind::SecretField | Kind::AwsSecretKey => out.push_str("********"),
        // `Linda Taylor` → `L**** T*****`: the capital initials of longer words stay
        // (nothing of `林 稔`).
        Kind::Name => {
            let mut word_start = true;
            let mut chars = raw.chars().peekable();
            while let Some(c) = chars.next() {
                if c.is_alphanumeric() {
                    let longer = chars.peek().is_some_and(|n| n.is_alphanumeric());
                    out.push(if word_start && c.is_uppercase() && longer {
                        c
                    } else {
                        '*'
                    });
                    word_start = false;
                } else {
                    out.push(
                        if c.is_whitespace() || matches!(c, '-' | '.' | ',' | '\'') {
                            c
                        } else {
                            '*'
                        },
                    );
                    word_start = true;
                }
            }
        }
        Kind::Address => {
            out.extend(raw.chars().map(|c| {
                if c.is_alphanumeric() || c.is_control() {
                    '*'
                } else {
                    c
                }
            }));
        }
    }
}

/// Length of the recognised type prefix of a token (`AKIA`, `ghp_`, `xoxb-`, `sk_live_`, `AIza`),
/// 0 if the raw value does not start with one.
fn type_prefix_len(kind: Kind, raw: &str) -> usize {
    let b = raw.as_bytes();
    let starts = |p: &str| raw.starts_with(p);
    let len = match kind {
        Kind::AwsAccessKey => [
            "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
        ]
        .iter()
        .any(|p| starts(p))
        .then_some(4),
        Kind::GithubToken if starts("github_pat_") => Some(11),
        Kind::GithubToken => (starts("gh")
            && b.get(2).is_some_and(|c| b"pousr".contains(c))
            && b.get(3) == Some(&b'_'))
        .then_some(4),
        Kind::SlackToken => (starts("xox") && b.get(4) == Some(&b'-')).then_some(5),
        Kind::StripeKey => (["sk_", "pk_", "rk_"].iter().any(|p| starts(p))
            && ["live_", "test_"].iter().any(|p| raw[3..].starts_with(p)))
        .then_some(8),
        Kind::GoogleApiKey => starts("AIza").then_some(4),
        _ => None,
    };
    // Keep a prefix only when something is left to hide.
    len.filter(|&n| raw.len() > 2 * n).unwrap_or(0)
}

fn is_kept_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '(' | ')' | '+' | '/' | '\n' | '\r' | '\t' | '\\'
    )
}

/// Stars every digit but the last `keep` (none if there are fewer than `min_digits`), keeps
/// separators, stars anything else.
fn keep_last_digits(raw: &str, keep: usize, min_digits: usize, out: &mut String) {
    let total = raw.chars().filter(char::is_ascii_digit).count();
    let keep = if total >= min_digits { keep } else { 0 };
    let mut seen = 0;
    let mut prev = ' ';
    for c in raw.chars() {
        if c.is_ascii_digit() {
            seen += 1;
            out.push(if seen > total - keep { c } else { '*' });
        } else if is_kept_separator(c) || (prev == '\\' && matches!(c, 'n' | 'r' | 't')) {
            out.push(c);
        } else {
            out.push('*');
        }
        prev = c;
    }
}

/// `+1 (555) 123-4567` → `+1 (***) ***-**67`: the country code and the last two digits stay.
fn mask_phone(raw: &str, out: &mut String) {
    let total = raw.chars().filter(char::is_ascii_digit).count();
    if total < 7 {
        return keep_last_digits(raw, 0, 0, out);
    }
    // The country code: 1-3 digits after the `+`, followed by a separator.
    let country = match raw.strip_prefix('+') {
        Some(rest) => {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            if (1..=3).contains(&n) && rest[n..].starts_with([' ', '-', '.', '(']) {
                n
            } else {
                0
            }
        }
        None => 0,
    };
    let mut seen = 0;
    let mut prev = ' ';
    for c in raw.chars() {
        if c.is_ascii_digit() {
            seen += 1;
            out.push(if seen <= country || seen > total - 2 {
                c
            } else {
                '*'
            });
        } else if is_kept_separator(c) || (prev == '\\' && matches!(c, 'n' | 'r' | 't')) {
            out.push(c);
        } else {
            out.push('*');
        }
        prev = c;
    }
}

/// `john@example.com` → `j***@e******.com`.
fn mask_email(raw: &str, out: &mut String) {
    let Some((local, domain)) = raw.rsplit_once('@') else {
        out.extend(raw.chars().map(|_| '*'));
        return;
    };
    star_after_first(local, out);
    out.push('@');
    let labels: Vec<&str> = domain.split('.').collect();
    let last = labels.len() - 1;
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match i {
            _ if i == last && last > 0 => out.push_str(label),
            0 => star_after_first(label, out),
            _ => out.extend(label.chars().map(|_| '*')),
        }
    }
}

/// Keeps the first character of `s` if there is more than one, stars the rest.
fn star_after_first(s: &str, out: &mut String) {
    let mut chars = s.chars();
    if s.chars().nth(1).is_some()
        && let Some(first) = chars.next()
    {
        out.push(first);
    }
    out.extend(chars.map(|_| '*'));
}

/// `DE89 3704 0044 0532 0130 00` → `DE** **** **** **** **30 00`.
fn mask_iban(raw: &str, out: &mut String) {
    let total = raw.chars().filter(char::is_ascii_alphanumeric).count();
    let (head, tail) = if total >= 12 { (2, 4) } else { (0, 0) };
    let mut seen = 0;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            seen += 1;
            out.push(if seen <= head || seen > total - tail {
                c
            } else {
                '*'
            });
        } else if c == ' ' {
            out.push(c);
        } else {
            out.push('*');
        }
    }
}

#[cfg(test)]
mod tests;
