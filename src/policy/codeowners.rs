//! CODEOWNERS parsing and matching: decides which owners must approve a change to a *subject*.
//!
//! Subjects are slash-separated paths without a leading slash, such as `deploy/web/values.yaml`
//! or `actions/db.export/prod/customers`. The file format is GitHub's CODEOWNERS (gitignore-style
//! patterns) extended with GitLab-style sections:
//!
//! - `[Name]`, `^[Name]` (optional), `[Name][N]` (N approvals), followed by optional default
//!   owners. Names compare case-insensitively and repeated headers continue the same section;
//!   a repeated header must agree on the optional flag and count (an omitted count means 1) and
//!   may only repeat or omit the default owners.
//! - Rules before the first header live in an implicit default section, which is always
//!   `sections[0]` (name `""`, line 0), even when it holds no rules.
//! - Within a section the last matching rule wins; each section is evaluated independently.
//!
//! Patterns follow gitignore: a leading or middle `/` anchors to the root, a trailing `/` only
//! matches directories (i.e. proper ancestors of the subject), and a pattern matching a directory
//! matches everything below it (`apps/web` covers `apps/web/src/main.rs`, `f*` covers
//! `foo/bar`, `foo/**/` covers `foo/bar`). As on GitHub, an anchored pattern ending in a lone `*`
//! matches only the files directly there: `docs/*` owns `docs/a.md` but not `docs/sub/b.md`,
//! which falls to an earlier rule (last match wins). The matcher agrees with the published test
//! vectors of an independent implementation (`tests/data/codeowners/`). Glob
//! syntax is globset's: `*`, `?`, `[a-z]`, `**` as a whole path component, `{a,b}`. Each rule
//! becomes one glob, validated by globset when the file is parsed and matched with fast-glob
//! through an index (see `Index`) against the subject and each of its ancestors (`a`, `a/b`,
//! `a/b/c`).

use std::fmt;

/// Component lookups happen for every path of every subject: a fast (seeded) hasher matters.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use globset::{Glob, GlobBuilder};

/// An owner as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `@alice`
    User(String),
    /// `@acme/platform`
    Team { org: String, team: String },
    /// `alice@example.com`
    Email(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::User(user) => write!(f, "@{user}"),
            Owner::Team { org, team } => write!(f, "@{org}/{team}"),
            Owner::Email(email) => f.write_str(email),
        }
    }
}

/// A section: the implicit default one (index 0) or one declared by `[Name]` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// As written in the first header with that name; `""` for the default section.
    pub name: String,
    /// Declared with `^[Name]`.
    pub optional: bool,
    /// `[Name][N]`; 1 when not given.
    pub approvals: u32,
    /// Owners for rules in this section that list none.
    pub default_owners: Vec<Owner>,
    /// 1-based line of the first header; 0 for the default section.
    pub line: usize,
}

/// One `pattern owner...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Index into [`Codeowners::sections`].
    pub section: usize,
    /// The pattern as written, with a leading `\#` unescaped to `#`.
    pub pattern: String,
    /// Explicit owners on the line (may be empty).
    pub owners: Vec<Owner>,
    /// 1-based line number.
    pub line: usize,
}

/// A problem in the file, at a 1-based line and (character) column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A parsed and compiled CODEOWNERS file.
#[derive(Debug, Clone)]
pub struct Codeowners {
    pub sections: Vec<Section>,
    pub rules: Vec<Rule>,
    /// Every rule's glob, bucketed by the literal path components it starts with.
    index: Index,
    /// Per rule: the pattern had a trailing `/`, so it may only match proper ancestors.
    dir_only: Vec<bool>,
    /// Per rule: anchored with a lone `*` last (`docs/*`), so, as on GitHub, it matches the
    /// files directly there and never extends to what lies below a matching directory.
    files_only: Vec<bool>,
}

impl Codeowners {
    /// Parses and compiles; returns ALL errors found (not just the first). A failure of the final
    /// glob-set build (not expected for patterns that compiled one by one) is reported at 0:0.
    pub fn parse(text: &str) -> Result<Codeowners, Vec<ParseError>> {
        let mut p = Parser::default();
        p.sections.push(Section {
            name: String::new(),
            optional: false,
            approvals: 1,
            default_owners: Vec::new(),
            line: 0,
        });
        for (idx, line) in text.lines().enumerate() {
            p.line(idx + 1, line);
        }
        if !p.errors.is_empty() {
            return Err(p.errors);
        }
        let index = Index::build(&p.globs);
        Ok(Codeowners {
            sections: p.sections,
            rules: p.rules,
            index,
            dir_only: p.dir_only,
            files_only: p.files_only,
        })
    }

    /// For each section that has a matching rule, the LAST matching rule's index (into `rules`),
    /// as (section index, rule index) pairs, ordered by section index. A matching rule with no
    /// owners is still reported (it clears ownership; see [`Codeowners::effective_owners`]).
    /// A leading `/` on the subject is ignored.
    pub fn matches(&self, subject: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        self.matches_into(subject, &mut found);
        found
    }

    /// [`Codeowners::matches`] into a reusable buffer (cleared first).
    pub fn matches_into(&self, subject: &str, found: &mut Vec<(usize, usize)>) {
        found.clear();
        let subject = subject.trim_start_matches('/');
        if subject.is_empty() {
            return;
        }
        self.index.for_each_match(subject, |rule, whole| {
            if (whole && self.dir_only[rule]) || (!whole && self.files_only[rule]) {
                return;
            }
            let section = self.rules[rule].section;
            match found.iter_mut().find(|(s, _)| *s == section) {
                Some((_, best)) => *best = rule.max(*best),
                None => found.push((section, rule)),
            }
        });
        found.sort_unstable();
    }

    /// The owners that apply for a rule: its explicit owners, or, if it has none, its section's
    /// default owners. Empty means ownership is cleared for that subject in that section.
    ///
    /// # Panics
    /// If `rule` is not an index into `rules`.
    pub fn effective_owners(&self, rule: usize) -> &[Owner] {
        let rule = &self.rules[rule];
        if rule.owners.is_empty() {
            &self.sections[rule.section].default_owners
        } else {
            &rule.owners
        }
    }
}

#[derive(Default)]
struct Parser {
    sections: Vec<Section>,
    /// Lower-cased section name -> index (the default section is not in here).
    by_name: HashMap<String, usize>,
    current: usize,
    rules: Vec<Rule>,
    /// One glob per rule, and whether it may only match proper ancestors (trailing `/`).
    globs: Vec<Glob>,
    dir_only: Vec<bool>,
    files_only: Vec<bool>,
    errors: Vec<ParseError>,
}

impl Parser {
    fn error(&mut self, line: usize, text: &str, byte: usize, message: String) {
        let column = text[..byte].chars().count() + 1;
        self.errors.push(ParseError {
            line,
            column,
            message,
        });
    }

    fn line(&mut self, n: usize, text: &str) {
        let rest = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.starts_with('[') || rest.starts_with("^[") {
            self.header(n, text, text.len() - rest.len());
        } else if !rest.is_empty() && !rest.starts_with('#') {
            self.rule(n, text);
        }
    }

    /// Parses the owners in `text[from..]`, reporting bad ones. Returns `None` if any was bad.
    fn owners(&mut self, n: usize, text: &str, from: usize) -> Option<Vec<Owner>> {
        let mut owners = Vec::new();
        let mut ok = true;
        for (byte, token) in tokens(text, from) {
            match parse_owner(token) {
                Some(owner) => owners.push(owner),
                None => {
                    self.error(n, text, byte, format!("unknown owner syntax `{token}`"));
                    ok = false;
                }
            }
        }
        ok.then_some(owners)
    }

    fn header(&mut self, n: usize, text: &str, start: usize) {
        let optional = text[start..].starts_with('^');
        let name_start = start + usize::from(optional) + 1;
        let Some(name_len) = text[name_start..].find(']') else {
            let msg = "unterminated section header: missing `]`".to_string();
            return self.error(n, text, start, msg);
        };
        let name = &text[name_start..name_start + name_len];
        let mut pos = name_start + name_len + 1;
        let mut ok = true;
        if name.is_empty() {
            self.error(n, text, start, "empty section name".to_string());
            ok = false;
        }
        let mut approvals = 1;
        if text[pos..].starts_with('[') {
            let count_start = pos + 1;
            let Some(len) = text[count_start..].find(']') else {
                let msg = "unterminated approval count: missing `]`".to_string();
                return self.error(n, text, pos, msg);
            };
            let count = &text[count_start..count_start + len];
            match count.parse::<u32>() {
                Ok(c) if c >= 1 && count.bytes().all(|b| b.is_ascii_digit()) => approvals = c,
                _ => {
                    let msg = format!("invalid approval count `{count}`: expected an integer >= 1");
                    self.error(n, text, count_start, msg);
                    ok = false;
                }
            }
            pos = count_start + len + 1;
        }
        let tail = &text[pos..];
        if !tail.is_empty() && !tail.starts_with(|c: char| c.is_ascii_whitespace()) {
            let junk = tail.split_ascii_whitespace().next().unwrap_or(tail);
            let msg = format!("unexpected `{junk}` after section header");
            return self.error(n, text, pos, msg);
        }
        let owners = self.owners(n, text, pos);
        if !ok {
            return;
        }
        if let Some(&idx) = self.by_name.get(&name.to_lowercase()) {
            let first = &self.sections[idx];
            let mut diffs = Vec::new();
            if first.optional != optional {
                diffs.push("optional flag differs".to_string());
            }
            if first.approvals != approvals {
                diffs.push(format!(
                    "approval count {approvals} differs from {}",
                    first.approvals
                ));
            }
            if owners
                .as_ref()
                .is_some_and(|o| !o.is_empty() && *o != first.default_owners)
            {
                diffs.push("default owners differ".to_string());
            }
            if !diffs.is_empty() {
                let msg = format!(
                    "conflicting header for section `{}` (first declared on line {}): {}",
                    first.name,
                    first.line,
                    diffs.join(", ")
                );
                self.error(n, text, start, msg);
            }
            self.current = idx;
        } else {
            self.current = self.sections.len();
            self.by_name.insert(name.to_lowercase(), self.current);
            self.sections.push(Section {
                name: name.to_string(),
                optional,
                approvals,
                default_owners: owners.unwrap_or_default(),
                line: n,
            });
        }
    }

    fn rule(&mut self, n: usize, text: &str) {
        let mut toks = tokens(text, 0);
        let Some((byte, raw)) = toks.next() else {
            return;
        };
        let pattern = match raw.strip_prefix("\\#") {
            Some(rest) => format!("#{rest}"),
            None => raw.to_string(),
        };
        let owners = self.owners(n, text, byte + raw.len()).unwrap_or_default();
        if pattern.starts_with('!') {
            let msg = "negated patterns are not supported in CODEOWNERS".to_string();
            self.error(n, text, byte, msg);
        } else {
            match compile(&pattern) {
                Ok((glob, dir_only)) => {
                    self.globs.push(glob);
                    self.dir_only.push(dir_only);
                    self.files_only
                        .push(!dir_only && lone_wildcard_last_component(&pattern));
                }
                Err(msg) => self.error(n, text, byte, msg),
            }
        }
        self.rules.push(Rule {
            section: self.current,
            pattern,
            owners,
            line: n,
        });
    }
}

/// Whitespace-separated tokens of `text[from..]` with their byte offsets in `text`, stopping at
/// the first token that starts with `#` (an inline comment).
fn tokens(text: &str, from: usize) -> impl Iterator<Item = (usize, &str)> {
    text[from..]
        .split_ascii_whitespace()
        .map(move |token| (token.as_ptr() as usize - text.as_ptr() as usize, token))
        .take_while(|(_, token)| !token.starts_with('#'))
}

/// Whether the pattern is anchored and ends in a lone `*` component (`docs/*`, `/*`): as on
/// GitHub, it owns the files directly in that directory (`docs/a.md`) but not deeper ones
/// (`docs/sub/b.md`). Any other last component, wildcards included (`f*`, `*.d`), also matches a
/// directory and so covers everything below it, as in gitignore.
fn lone_wildcard_last_component(pattern: &str) -> bool {
    let rooted = pattern.starts_with('/');
    let body = pattern.trim_start_matches('/');
    match body.rsplit_once('/') {
        Some((_, last)) => last == "*",
        None => rooted && body == "*",
    }
}

/// Translates a gitignore-style pattern into one glob, to be tested against the subject and each
/// of its ancestors; the flag says the glob may only match proper ancestors (trailing `/`).
fn compile(pattern: &str) -> Result<(Glob, bool), String> {
    let rooted = pattern.strip_prefix('/');
    let trimmed = rooted.unwrap_or(pattern);
    let body = trimmed.trim_end_matches('/');
    // `foo/**/` is `foo/**`: everything below `foo`, whether directory or file.
    let dir_only = trimmed.ends_with('/') && !body.ends_with("/**");
    let anchored = rooted.is_some() || body.contains('/');
    let glob = if body.is_empty() || body == "**" || anchored {
        if body.is_empty() { "**" } else { body }.to_string()
    } else {
        format!("**/{body}")
    };
    GlobBuilder::new(&glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|glob| (glob, dir_only))
        .map_err(|e| format!("invalid pattern `{pattern}`: {}", e.kind()))
}

pub(super) fn parse_owner(token: &str) -> Option<Owner> {
    let word = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    if let Some(rest) = token.strip_prefix('@') {
        return match rest.split_once('/') {
            Some((org, team)) => (word(org, b"-_.") && word(team, b"-_.")).then(|| Owner::Team {
                org: org.into(),
                team: team.into(),
            }),
            None => word(rest, b"-_.").then(|| Owner::User(rest.into())),
        };
    }
    let (local, domain) = token.split_once('@')?;
    let email = word(local, b".!#$%&'*+-/=?^_`{|}~")
        && domain.contains('.')
        && domain.split('.').all(|label| word(label, b"-"));
    email.then(|| Owner::Email(token.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"<section>: <owners>"` per matching section (`default` for section 0), joined by `; `;
    /// `cleared` for an empty owner list, `none` when nothing matches.
    fn describe(co: &Codeowners, subject: &str) -> String {
        let found: Vec<String> = co
            .matches(subject)
            .into_iter()
            .map(|(s, r)| {
                let name = if s == 0 {
                    "default"
                } else {
                    &co.sections[s].name
                };
                let owners: Vec<String> = co
                    .effective_owners(r)
                    .iter()
                    .map(|o| o.to_string())
                    .collect();
                let owners = if owners.is_empty() {
                    "cleared".into()
                } else {
                    owners.join(" ")
                };
                format!("{name}: {owners}")
            })
            .collect();
        if found.is_empty() {
            "none".into()
        } else {
            found.join("; ")
        }
    }

    const PATHS: &str = r"# Patterns, all in the default section.
*                   @global
*.js                @js @acme/frontend   # inline comment
docs/               @any-docs
/docs/              @root-docs
tmp                 @tmp
**/logs             @logs
apps/web            @web
/build/tmp          @build-tmp
\#notes.txt         @hash
\[weird].txt        @bracket
file?.txt           @question
data/[ab]*.csv      @class
generated/**        @gen
*.{yml,yaml}        @yaml
deploy/*            @deployers
src/**/gen          @srcgen
vendor/             @vendor
vendor/keep/
vendor/keep/*.lock  dev@example.com
secrets/prod/       @prod
secrets/            @sec
";

    const SECTIONS: &str = "* @global
docs @bare-docs

[Docs][2] @docs-team
docs/
*.md
guides/ @writers

^[Security] @sec-team
secrets/
*.md @md-sec

[DOCS][2]  # continues [Docs]
api/

[Database] @dba
db/ @dba alice@example.com
db/readonly/

[Ops]
ops/ @ops
ops/tmp/
";

    #[test]
    fn table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                PATHS,
                &[
                    ("README.md", "default: @global"),
                    (".hidden", "default: @global"),
                    ("a.js", "default: @js @acme/frontend"),
                    ("src/deep/b.js", "default: @js @acme/frontend"),
                    ("src/b.jsx", "default: @global"),
                    ("docs/a.md", "default: @root-docs"),
                    ("docs/sub/a.md", "default: @root-docs"),
                    ("x/docs/b.md", "default: @any-docs"),
                    ("docs", "default: @global"),
                    ("x/docs", "default: @global"),
                    ("tmp", "default: @tmp"),
                    ("x/tmp", "default: @tmp"),
                    ("x/tmp/today.txt", "default: @tmp"),
                    ("tmpx", "default: @global"),
                    ("build/tmp/x", "default: @build-tmp"),
                    ("y/build/tmp/x", "default: @tmp"),
                    ("logs", "default: @logs"),
                    ("a/logs", "default: @logs"),
                    ("a/b/logs/x.txt", "default: @logs"),
                    ("apps/web", "default: @web"),
                    ("apps/web/src/main.rs", "default: @web"),
                    ("x/apps/web", "default: @global"),
                    ("apps/webx", "default: @global"),
                    ("#notes.txt", "default: @hash"),
                    ("x/#notes.txt", "default: @hash"),
                    ("[weird].txt", "default: @bracket"),
                    ("w.txt", "default: @global"),
                    ("file1.txt", "default: @question"),
                    ("file12.txt", "default: @global"),
                    ("data/a1.csv", "default: @class"),
                    ("data/c1.csv", "default: @global"),
                    ("x/data/a1.csv", "default: @global"),
                    ("generated/x/y.rs", "default: @gen"),
                    ("generated", "default: @global"),
                    ("x/a.yml", "default: @yaml"),
                    ("deploy/web/values.yaml", "default: @yaml"),
                    ("deploy/web/run.sh", "default: @global"),
                    ("deploy/run.sh", "default: @deployers"),
                    ("deploy", "default: @global"),
                    ("src/gen", "default: @srcgen"),
                    ("src/x/y/gen/c", "default: @srcgen"),
                    ("x/src/gen", "default: @global"),
                    ("vendor/lib/x.c", "default: @vendor"),
                    ("vendor/keep/x.js", "default: cleared"),
                    ("vendor/keep/y.lock", "default: dev@example.com"),
                    ("secrets/prod/key", "default: @sec"),
                    ("/README.md", "default: @global"),
                ],
            ),
            (
                SECTIONS,
                &[
                    ("x", "default: @global"),
                    ("docs", "default: @bare-docs"),
                    ("x/docs", "default: @bare-docs"),
                    ("x/docs/a.txt", "default: @bare-docs; Docs: @docs-team"),
                    ("docsy", "default: @global"),
                    (
                        "README.md",
                        "default: @global; Docs: @docs-team; Security: @md-sec",
                    ),
                    (
                        "guides/x.md",
                        "default: @global; Docs: @writers; Security: @md-sec",
                    ),
                    ("api/v1.yaml", "default: @global; Docs: @docs-team"),
                    ("secrets/k", "default: @global; Security: @sec-team"),
                    (
                        "db/x.sql",
                        "default: @global; Database: @dba alice@example.com",
                    ),
                    ("db/readonly/v.sql", "default: @global; Database: @dba"),
                    ("ops/x", "default: @global; Ops: @ops"),
                    ("ops/tmp/x", "default: @global; Ops: cleared"),
                ],
            ),
            (
                "/docs/ @a\n",
                &[("docs/x", "default: @a"), ("docs", "none"), ("", "none")],
            ),
            ("[Only] @o\nx/\n", &[("x/y", "Only: @o"), ("y", "none")]),
        ];
        for (text, checks) in cases {
            let co = Codeowners::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
            for (subject, expected) in *checks {
                assert_eq!(describe(&co, subject), *expected, "subject `{subject}`");
            }
        }
    }

    #[test]
    fn sections_metadata() {
        let co = Codeowners::parse(SECTIONS).unwrap();
        let summary: Vec<_> = co
            .sections
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.optional,
                    s.approvals,
                    s.default_owners.len(),
                    s.line,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("", false, 1, 0, 0),
                ("Docs", false, 2, 1, 4),
                ("Security", true, 1, 1, 9),
                ("Database", false, 1, 1, 16),
                ("Ops", false, 1, 0, 20),
            ]
        );
        let api = co.rules.iter().find(|r| r.pattern == "api/").unwrap();
        assert_eq!((api.section, api.line), (1, 14));
        let team = Owner::Team {
            org: "acme".into(),
            team: "frontend".into(),
        };
        let paths = Codeowners::parse(PATHS).unwrap();
        assert_eq!(paths.rules[1].owners[1], team);
        assert_eq!(paths.rules[8].pattern, "#notes.txt");
        assert_eq!(paths.rules[9].pattern, r"\[weird].txt");
        assert!(Codeowners::parse("").unwrap().matches("a").is_empty());
    }

    #[test]
    fn parse_errors() {
        let cases = [
            (
                "docs/ @alice @bad!owner",
                "1:14: unknown owner syntax `@bad!owner`",
            ),
            ("x @a/b/c", "1:3: unknown owner syntax `@a/b/c`"),
            (
                "x alice@localhost",
                "1:3: unknown owner syntax `alice@localhost`",
            ),
            ("x alice", "1:3: unknown owner syntax `alice`"),
            (
                "  !secret @alice",
                "1:3: negated patterns are not supported in CODEOWNERS",
            ),
            (
                "src/[ab.txt @alice",
                "1:1: invalid pattern `src/[ab.txt`: unclosed character class; missing ']'",
            ),
            (
                "[Section][0]",
                "1:11: invalid approval count `0`: expected an integer >= 1",
            ),
            (
                "[Section][x]",
                "1:11: invalid approval count `x`: expected an integer >= 1",
            ),
            (
                "[Section][2",
                "1:10: unterminated approval count: missing `]`",
            ),
            ("^[Section", "1:1: unterminated section header: missing `]`"),
            ("[Section]@a", "1:10: unexpected `@a` after section header"),
            (
                "[Section]#x y",
                "1:10: unexpected `#x` after section header",
            ),
            ("[] @alice", "1:1: empty section name"),
            (
                "[Docs][2]\na @b\n[docs]",
                "3:1: conflicting header for section `Docs` (first declared on line 1): \
                 approval count 1 differs from 2",
            ),
            (
                "[Docs] @a\n^[DOCS] @b",
                "2:1: conflicting header for section `Docs` (first declared on line 1): \
                 optional flag differs, default owners differ",
            ),
        ];
        for (text, expected) in cases {
            let errors = Codeowners::parse(text).expect_err(text);
            let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(rendered, [expected], "input {text:?}");
        }
    }

    #[test]
    fn reports_all_errors() {
        let text = "* @ok\n!neg @a\n[Bad][0]\ndocs/ @x y z@q.io\n[]\n[ok] @fine\n[a-*.md @b\n";
        let errors = Codeowners::parse(text).unwrap_err();
        let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(2, 1), (3, 7), (4, 10), (5, 1), (7, 1)]);
    }
}

/// How rules are found for a subject without trying every pattern: anchored globs sit in a trie
/// over their leading literal path components (fully literal ones match by position alone, the
/// rest of a partly literal one is tried only below its node); unanchored `**/name` and
/// `**/*.ext` globs are looked up by file name and extension; only the remaining unanchored
/// globs are tried on every path. Globs are validated by globset at parse time and matched with
/// fast-glob, which needs no compilation (compiling thousands of regexes is what made a large
/// file slow).
#[derive(Debug, Clone, Default)]
struct Index {
    root: Node,
    /// `**/<literal>`: rules by the literal name.
    names: HashMap<String, Vec<usize>>,
    /// `**/*<literal suffix>`: rules by the suffix's last extension (`.gz` for `*.tar.gz`).
    suffixes: HashMap<String, Vec<(usize, String)>>,
    /// Every other unanchored glob.
    wild: Tails,
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// Rules whose glob is exactly the path to this node.
    exact: Vec<usize>,
    /// Rules whose glob continues below this node with wildcards.
    tails: Tails,
}

/// Globs (or remainders of globs) tried with fast-glob, indexed by what their last path
/// component requires so that most are never tried: a literal name, a literal suffix after `*`
/// (keyed by its last extension), or anything.
#[derive(Debug, Clone, Default)]
struct Tails {
    by_name: HashMap<String, Vec<Tail>>,
    by_extension: HashMap<String, Vec<Tail>>,
    any: Vec<Tail>,
}

#[derive(Debug, Clone)]
struct Tail {
    rule: usize,
    glob: String,
    /// `**` or `**/*`: matches every non-empty path.
    always: bool,
    /// Required suffix of the last component (already known to share its last extension).
    suffix: Option<String>,
    /// Literal components the glob has before its last one: a path lacking any cannot match.
    required: Vec<String>,
}

impl Tails {
    fn add(&mut self, rule: usize, glob: &str) {
        let mut components: Vec<&str> = glob.split('/').collect();
        let last = components.pop().unwrap_or_default();
        let mut tail = Tail {
            rule,
            glob: glob.to_owned(),
            always: glob == "**" || glob == "**/*",
            suffix: None,
            required: components
                .into_iter()
                .filter(|c| is_literal(c))
                .map(str::to_owned)
                .collect(),
        };
        if is_literal(last) {
            self.by_name.entry(last.to_owned()).or_default().push(tail);
        } else if let Some(suffix) = last.strip_prefix('*').filter(|r| is_literal(r))
            && let Some(extension) = last_extension(suffix)
        {
            let extension = extension.to_owned();
            tail.suffix = Some(suffix.to_owned());
            self.by_extension.entry(extension).or_default().push(tail);
        } else {
            self.any.push(tail);
        }
    }

    /// Tries every tail that can match `path`, whose components are `components`.
    fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_extension.is_empty() && self.any.is_empty()
    }

    fn for_each_match(&self, path: &str, components: &[&str], mut hit: impl FnMut(usize)) {
        if self.is_empty() {
            return;
        }
        let last = components.last().copied().unwrap_or_default();
        let named = (!self.by_name.is_empty())
            .then(|| self.by_name.get(last))
            .flatten()
            .into_iter()
            .flatten();
        let extended = (!self.by_extension.is_empty())
            .then(|| last_extension(last).and_then(|e| self.by_extension.get(e)))
            .flatten()
            .into_iter()
            .flatten();
        for tail in named.chain(extended).chain(&self.any) {
            if tail.matches(path, last, components) {
                hit(tail.rule);
            }
        }
    }
}

impl Tail {
    fn matches(&self, path: &str, last: &str, components: &[&str]) -> bool {
        if self.always {
            return !path.is_empty();
        }
        self.suffix
            .as_ref()
            .is_none_or(|s| last.ends_with(s.as_str()))
            && self
                .required
                .iter()
                .all(|r| components.contains(&r.as_str()))
            && fast_glob::glob_match(&self.glob, path)
    }
}

fn is_literal(s: &str) -> bool {
    !s.is_empty() && !s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn last_extension(s: &str) -> Option<&str> {
    s.rfind('.').map(|i| &s[i..])
}

impl Index {
    fn build(globs: &[Glob]) -> Index {
        let mut index = Index::default();
        for (rule, glob) in globs.iter().enumerate() {
            index.add(rule, glob.glob());
        }
        index
    }

    fn add(&mut self, rule: usize, glob: &str) {
        if let Some(rest) = glob.strip_prefix("**/") {
            if is_literal(rest) && !rest.contains('/') {
                self.names.entry(rest.to_owned()).or_default().push(rule);
            } else if let Some(suffix) = rest
                .strip_prefix('*')
                .filter(|r| is_literal(r) && !r.contains('/'))
            {
                let key = last_extension(suffix).unwrap_or(suffix).to_owned();
                self.suffixes
                    .entry(key)
                    .or_default()
                    .push((rule, suffix.to_owned()));
            } else {
                self.wild.add(rule, glob);
            }
            return;
        }
        let mut node = &mut self.root;
        let mut parts = glob.split('/').peekable();
        while let Some(part) = parts.peek() {
            if !is_literal(part) {
                break;
            }
            node = node.children.entry((*part).to_owned()).or_default();
            parts.next();
        }
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            node.exact.push(rule);
        } else {
            node.tails.add(rule, &rest.join("/"));
        }
    }

    /// Calls `hit(rule, whole)` for every rule whose glob matches `subject` itself (`whole`) or
    /// one of its ancestors.
    fn for_each_match(&self, subject: &str, mut hit: impl FnMut(usize, bool)) {
        // Components on the stack for ordinary depths, on the heap beyond.
        let mut stack = [""; 32];
        let heap: Vec<&str>;
        let parts: &[&str] = if subject.bytes().filter(|&b| b == b'/').count() < stack.len() {
            let mut n = 0;
            for part in subject.split('/') {
                stack[n] = part;
                n += 1;
            }
            &stack[..n]
        } else {
            heap = subject.split('/').collect();
            &heap
        };
        let n = parts.len();
        // Components are slices of `subject`: their offsets give every prefix path.
        let start = |k: usize| parts[k].as_ptr() as usize - subject.as_ptr() as usize;
        let end = |k: usize| start(k) + parts[k].len();
        // Anchored: walk the trie; at each node try its tails on every deeper path.
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            for k in depth..n {
                let path = &subject[start(depth)..end(k)];
                node.tails
                    .for_each_match(path, &parts[depth..=k], |rule| hit(rule, k + 1 == n));
            }
            if depth == n {
                break;
            }
            match node.children.get(parts[depth]) {
                Some(child) => {
                    node = child;
                    depth += 1;
                    for &rule in &node.exact {
                        hit(rule, depth == n);
                    }
                }
                None => break,
            }
        }
        // Unanchored: by name, by suffix, then the rest, on every path from the root.
        for (k, part) in parts.iter().enumerate() {
            let whole = k + 1 == n;
            if let Some(rules) = (!self.names.is_empty())
                .then(|| self.names.get(*part))
                .flatten()
            {
                for &rule in rules {
                    hit(rule, whole);
                }
            }
            let by_suffix = (!self.suffixes.is_empty())
                .then(|| last_extension(part).and_then(|e| self.suffixes.get(e)))
                .flatten();
            if let Some(candidates) = by_suffix {
                for (rule, suffix) in candidates {
                    if part.ends_with(suffix.as_str()) {
                        hit(*rule, whole);
                    }
                }
            }
            self.wild
                .for_each_match(&subject[..end(k)], &parts[..=k], |rule| hit(rule, whole));
        }
    }
}

/// The published pattern test vectors of an independent CODEOWNERS implementation
/// (hmarr/codeowners, MIT; see tests/data/codeowners/README.md): every pattern, every path.
#[cfg(test)]
mod independent_vectors {
    use super::Codeowners;

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        pattern: String,
        paths: std::collections::BTreeMap<String, bool>,
    }

    #[test]
    fn matcher_agrees_with_hmarr_codeowners_vectors() {
        let cases: Vec<Case> = serde_json::from_str(include_str!(
            "../../tests/data/codeowners/hmarr-patterns.json"
        ))
        .expect("vectors parse");
        let mut wrong = Vec::new();
        let mut checked = 0;
        for case in &cases {
            let co = Codeowners::parse(&format!("{} @owner\n", case.pattern))
                .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
            for (path, expected) in &case.paths {
                checked += 1;
                // A trailing slash on a path names a directory; subjects are files below it.
                let subject = path.trim_end_matches('/');
                let subject = if path.ends_with('/') {
                    format!("{subject}/file")
                } else {
                    subject.to_owned()
                };
                let got = !co.matches(&subject).is_empty();
                if got != *expected {
                    wrong.push(format!(
                        "{} (`{}`): `{path}` expected {expected}, got {got}",
                        case.name, case.pattern
                    ));
                }
            }
        }
        assert!(checked > 140, "only {checked} vectors checked");
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

#[cfg(test)]
mod separator_tests {
    use super::Codeowners;

    #[test]
    fn wildcards_never_cross_a_slash() {
        let co = Codeowners::parse("/a?b @q\n/x*y @s\n/c[/]d @t\n").unwrap();
        assert!(co.matches("a/b").is_empty(), "? must not match /");
        assert_eq!(co.matches("axb").len(), 1);
        assert!(co.matches("x/y").is_empty(), "* must not match /");
        assert_eq!(co.matches("x-y").len(), 1);
        assert!(co.matches("c/d").is_empty());
    }
}
