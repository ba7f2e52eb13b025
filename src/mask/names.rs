//! Person names and street addresses: the personal data a customer export carries most, which no
//! fixed-shape pattern finds.
//!
//! - **Keys.** Values under name-like keys (`first_name`, `customer_name`, `approverName`,
//!   `contact`, …; [`DEFAULT_NAME_KEYS`], configurable) are names whole; a bare `name` key only
//!   when its value is shaped like a person's name (2–4 capitalised words), because `name` also
//!   names buckets, services and jobs. Address-like keys (`address`, `street`,
//!   `billing_address`, `address_line1`, but not `ip_address`, `email_address`, `mac_address`)
//!   are addresses whole.
//! - **Free text.** A gazetteer of given names and surnames — the US Census 1990 lists, public
//!   domain, as shipped by PyPI's `names` package (see `data/README.md`) — is loaded once into
//!   hash sets. A name is a capitalised given name followed by a capitalised surname from the
//!   lists (with an optional middle initial or second surname), or capitalised words after a
//!   title (`Mr.`, `Dr.`, `Frau`, …) or a context word (`Dear`, `by`, `from`, `cc`, …) when one of
//!   them is in the lists. Given names that are also everyday English words (`May`, `Will`,
//!   `August`, `Mark`) need a context word or a title.
//! - **Addresses.** A house number, one to four capitalised words and a street type (`1600
//!   Pennsylvania Ave NW`, `12 Baker Street, Apt. 4`), or a street word that ends in a street
//!   type (`Hauptstraße 5`, `Koskikatu 25 Apt. 864`, `Kerkstraat 12`), or a leading street type
//!   (`Via Roma 12`, `Calle Mayor, 3`, `5 rue de la Paix`).

use std::collections::HashSet;
use std::sync::OnceLock;

/// Normalised key names whose string values are person names (lower-case, no separators);
/// a key matches when its normalised form equals one or ends with one.
pub const DEFAULT_NAME_KEYS: &[&str] = &[
    "firstname",
    "lastname",
    "givenname",
    "familyname",
    "middlename",
    "maidenname",
    "surname",
    "fullname",
    "customername",
    "approvername",
    "requestername",
    "reviewername",
    "contactname",
    "ownername",
    "holdername",
    "cardholder",
    "recipientname",
    "sendername",
    "patientname",
    "employeename",
    "personname",
    "billingname",
    "shippingname",
    "contact",
    "customer",
    "approver",
    "requester",
    "requestedby",
    "approvedby",
    "signedby",
];

/// The gazetteer: the lists as committed (sorted, one name a line), split into lines once and
/// searched by binary search (no hashing of 94k names at start-up, about 28 million
/// instructions with hash sets).
struct Gazetteer {
    given: Vec<&'static str>,
    surnames: Vec<&'static str>,
}

fn gazetteer() -> &'static Gazetteer {
    static G: OnceLock<Gazetteer> = OnceLock::new();
    G.get_or_init(|| {
        let lines = |list: &'static str| -> Vec<&'static str> {
            let mut v: Vec<&'static str> = list.split('\n').filter(|l| !l.is_empty()).collect();
            // Sorted as committed; sorting again costs nothing then and keeps the search right.
            v.sort_unstable();
            v
        };
        Gazetteer {
            given: lines(include_str!("data/given_names.txt")),
            surnames: lines(include_str!("data/surnames.txt")),
        }
    })
}

/// Loads the gazetteer now rather than on the first name lookup.
pub fn preload() {
    gazetteer();
}

/// Given names that are also everyday English words: a name only after a title or context word.
const AMBIGUOUS_GIVEN: &[&str] = &[
    "MAY",
    "WILL",
    "JUNE",
    "APRIL",
    "AUGUST",
    "MARCH",
    "JANUARY",
    "MARK",
    "BILL",
    "GRANT",
    "HOPE",
    "JOY",
    "FAITH",
    "DAWN",
    "SUE",
    "MAX",
    "PAT",
    "ART",
    "GUY",
    "RICH",
    "LONG",
    "YOUNG",
    "SUMMER",
    "AUTUMN",
    "WINTER",
    "CHRISTIAN",
    "PARIS",
    "CHINA",
    "LOVE",
    "CHANCE",
    "SAGE",
    "ROSE",
    "IVY",
    "DEAN",
    "FRANK",
    "NORMAN",
    "SHERMAN",
    "BROOK",
    "LANE",
    "WOOD",
    "MOHAMMED",
    "ROBIN",
    "CAROL",
    "KING",
    "PRINCE",
    "ANGEL",
    "BUNNY",
    "CANDY",
    "CRYSTAL",
    "DAISY",
    "GOLDIE",
    "HARMONY",
    "HONEY",
    "JEWEL",
    "LIBERTY",
    "MELODY",
    "PEARL",
    "PRECIOUS",
    "RUBY",
    "SHERRY",
    "SKY",
    "STORM",
    "SUNNY",
    "VAN",
    "TRUE",
    "GALE",
    "JACK",
    "JIMMY",
    "BRANDY",
    "CHERRY",
    "CLEMENT",
    "DELL",
    "ERNEST",
    "FOREST",
    "MASON",
    "MILES",
    "MONDAY",
    "NOBLE",
    "PIERCE",
    "REED",
    "SPENCER",
    "WARD",
    "WES",
    "STERLING",
    "CARMEN",
    "DALE",
    "GLEN",
    "HUNTER",
    "JUSTICE",
    "KEY",
    "LOGAN",
    "LINCOLN",
    "MADISON",
    "AVERY",
    "JORDAN",
    "TUESDAY",
    "RAY",
    "LEE",
    "DON",
    "SOL",
    "MAJOR",
    "DUKE",
    "EARL",
];

/// Capitalised function words at a sentence start that the Census lists also hold.
const FUNCTION_WORDS: &[&str] = &[
    "The", "This", "That", "These", "Those", "And", "But", "For", "Not", "Any", "All", "Our",
    "Your", "Its", "His", "Her", "Their", "When", "Then", "Than", "Also", "Each", "Every", "Some",
    "One", "Two", "New", "Old", "See", "Use", "Run", "Set", "Get", "Add", "Can", "Did", "Has",
    "Was", "Are", "Will", "May", "Should", "Would", "Could", "Must", "Shall", "Might", "Here",
    "There", "Where", "Why", "How", "What", "Who", "Which", "With", "From", "Into", "Over",
    "Under", "After", "Before", "Since", "Until", "While", "Note", "Only", "Just", "Very",
];

/// Titles: the capitalised words after one are a name.
const TITLES: &[&str] = &[
    "Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Dame", "Lady", "Lord", "Herr", "Frau",
    "Mme", "Mlle", "Monsieur", "Madame", "Sr", "Sra", "Srta", "Don", "Doña", "Sig", "Sig.ra",
    "Dott", "Dhr", "Mevr", "Mevrouw",
];

/// Context words: a capitalised word after one is a name when it is in the lists.
const CONTEXT: &[&str] = &[
    "by",
    "from",
    "Dear",
    "dear",
    "cc",
    "Cc",
    "CC",
    "Hi",
    "Hello",
    "Hey",
    "Thanks",
    "contact",
    "customer",
    "approver",
    "requester",
    "reviewer",
    "owner",
    "signed",
    "attn",
    "Attn",
    "von",
    "par",
    "Regards",
    "regards",
    "Sincerely",
    "Hallo",
    "Bonjour",
    "Hola",
    "Ciao",
    "Beste",
];

/// One word of the text: its byte span.
#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphabetic() || c == '\'' || c == '’' || c == '-'
}

/// Upper-cased ASCII form of a name word for the lists (`Müller` → `MULLER`, `O'Brien` →
/// `OBRIEN`); `None` when it has letters no list spells.
fn fold(word: &str, buf: &mut String) -> bool {
    buf.clear();
    for c in word.chars() {
        let up = match c {
            'a'..='z' | 'A'..='Z' => c.to_ascii_uppercase(),
            '\'' | '’' => continue,
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'A'
            }
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'E',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => {
                'O'
            }
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
            'ñ' | 'Ñ' => 'N',
            'ç' | 'Ç' => 'C',
            'ý' | 'ÿ' | 'Ý' => 'Y',
            'ß' => {
                buf.push_str("SS");
                continue;
            }
            _ => return false,
        };
        buf.push(up);
    }
    !buf.is_empty()
}

/// Whether a word starts with an upper-case letter followed by a lower-case one (`Linda`,
/// `McDonald`, `O'Brien`), or is a single capital (an initial).
fn capitalised(w: &str) -> bool {
    let mut chars = w.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_uppercase() && chars.clone().any(char::is_lowercase) && {
        // Not shouting (`NASA`), not camelCase product words (`iPhone` starts lower anyway).
        let upper = w.chars().filter(|c| c.is_uppercase()).count();
        upper <= 3
    }
}

fn in_list(word: &str, given: bool, buf: &mut String) -> bool {
    let g = gazetteer();
    // Hyphenated names: the first part of a given name (`Hans-Jürgen`), any part of a
    // surname (`Smith-Jones`).
    let mut parts = word.split('-').filter(|p| p.len() >= 3);
    if given {
        parts
            .next()
            .is_some_and(|p| fold(p, buf) && g.given.binary_search(&buf.as_str()).is_ok())
    } else {
        parts.any(|p| fold(p, buf) && g.surnames.binary_search(&buf.as_str()).is_ok())
    }
}

/// The next word at or after `from` (letters, apostrophes, inner hyphens; hyphens and
/// apostrophes at its edges are punctuation).
fn next_word(text: &str, from: usize) -> Option<Word> {
    let b = text.as_bytes();
    let mut i = from;
    // Skip to a letter (ASCII fast path).
    let start = loop {
        let &c = b.get(i)?;
        if c.is_ascii_alphabetic() {
            break i;
        }
        if c < 0x80 {
            i += 1;
            continue;
        }
        let ch = text[i..].chars().next()?;
        if ch.is_alphabetic() {
            break i;
        }
        i += ch.len_utf8();
    };
    let mut end = start;
    while let Some(&c) = b.get(end) {
        if c.is_ascii_alphabetic() || c == b'\'' || c == b'-' {
            end += 1;
        } else if c >= 0x80 {
            let ch = text[end..].chars().next()?;
            if !is_word_char(ch) {
                break;
            }
            end += ch.len_utf8();
        } else {
            break;
        }
    }
    // Trailing hyphens and apostrophes are punctuation.
    let word = text[start..end].trim_end_matches(['-', '\'', '’']);
    Some(Word {
        start,
        end: start + word.len(),
    })
}

/// Only blanks (one space, or `. ` after an initial or title) between two words.
fn adjacent(text: &str, a: &Word, b: &Word) -> bool {
    let gap = &text[a.end..b.start];
    matches!(gap, " " | "\u{a0}") || (gap == ". " && a.end - a.start == 1)
}

/// A middle initial between `a` and `c` (`John F. Kennedy`): the word and its gap.
fn is_initial(text: &str, w: &Word) -> bool {
    let s = &text[w.start..w.end];
    s.len() == 1
        && s.as_bytes()[0].is_ascii_uppercase()
        && text.as_bytes().get(w.end) == Some(&b'.')
}

/// Context words strong enough that the capitalised words after them are a name whatever the
/// lists say (`Dear Karsten Wieloch`, `requested by Ana Pino`).
const STRONG_CONTEXT: &[&str] = &[
    "Dear",
    "dear",
    "cc",
    "Cc",
    "CC",
    "Hi",
    "Hello",
    "Hey",
    "Thanks",
    "Attn",
    "attn",
    "Regards",
    "regards",
    "Sincerely",
    "Hallo",
    "Bonjour",
    "Hola",
    "Ciao",
    "Beste",
];

/// Words after a name that belong to it (`Jr.`, `DDS`, `PhD`).
const NAME_SUFFIXES: &[&str] = &[
    "Jr", "Sr", "II", "III", "IV", "MD", "DDS", "PhD", "DVM", "Esq", "B.Sc", "M.Sc", "MBA",
];

/// Lower-case particles inside a name (`Fleur van der Heijden`, `Ana de la Cruz`).
const PARTICLES: &[&str] = &[
    "van", "der", "den", "de", "del", "della", "la", "le", "von", "zu", "di", "da", "du", "dos",
    "das", "y", "ter", "ten", "te", "'t",
];

/// Whether a word is written in Han, Hiragana or Katakana (1-4 characters: a Japanese or
/// Chinese name part).
fn cjk_name_part(w: &str) -> bool {
    let n = w.chars().count();
    (1..=4).contains(&n)
        && w.chars()
            .all(|c| matches!(u32::from(c), 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF))
}

/// Byte spans of person names in free text.
///
/// Only a word that starts with an upper-case letter or a non-ASCII letter can start a name, so
/// the pass jumps from one such byte to the next and reads the word before it backwards when it
/// needs it, instead of splitting the whole text into words.
pub fn find_names(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let word = |w: Word| &text[w.start..w.end];
    let mut buf = String::new();
    // The end of the last name found: the word before the next candidate is context only if it
    // starts after it.
    let mut last_end = 0;
    let mut pos = 0;
    while pos < b.len() {
        // An upper-case ASCII letter or the lead byte of a non-ASCII character.
        let Some(at) = b[pos..]
            .iter()
            .position(|&c| c.is_ascii_uppercase() || c >= 0xC0)
            .map(|i| pos + i)
        else {
            break;
        };
        if !word_starts_at(text, at) {
            pos = at + 1;
            continue;
        }
        let Some(w) = next_word(text, at) else {
            break;
        };
        pos = w.end.max(w.start + 1);
        let first = word(w);
        let cjk = !first.is_ascii() && cjk_name_part(first);
        if !(capitalised(first) || cjk) || TITLES.contains(&first) {
            continue;
        }
        // The word before, if only a blank (or `. `, `, `) separates them.
        let prev = previous_word(text, w.start).filter(|p| p.start >= last_end);
        let prev_word = prev.map(word);
        let titled = prev_word.is_some_and(|p| TITLES.contains(&p));
        let strong = titled || prev_word.is_some_and(|p| STRONG_CONTEXT.contains(&p));
        let context = strong || prev_word.is_some_and(|p| CONTEXT.contains(&p));
        // The words that follow: capitalised, initials, particles; up to five in all.
        let mut run: Vec<Word> = vec![w];
        while run.len() < 5 {
            let last = *run.last().expect("non-empty");
            // A possessive ends a name (`Erich Gamma's JUnit`).
            if word(last).ends_with("'s") || word(last).ends_with("’s") {
                break;
            }
            let Some(next) = next_word(text, last.end) else {
                break;
            };
            if !adjacent(text, &last, &next) {
                break;
            }
            let n = word(next);
            let fits = if cjk {
                cjk_name_part(n)
            } else {
                (capitalised(n) && !FUNCTION_WORDS.contains(&n))
                    || is_initial(text, &next)
                    || PARTICLES.contains(&n)
            };
            if !fits {
                break;
            }
            run.push(next);
        }
        // A run ends on a name word, not on an initial or a particle.
        while run.len() > 1 {
            let last = *run.last().expect("non-empty");
            if is_initial(text, &last) || PARTICLES.contains(&word(last)) {
                run.pop();
            } else {
                break;
            }
        }
        // One capitalised word is a name only after a title: skip the lookups otherwise.
        if run.len() == 1 && !titled {
            continue;
        }
        let given = !cjk && in_list(first, true, &mut buf) && !FUNCTION_WORDS.contains(&first);
        let ambiguous = given && fold(first, &mut buf) && AMBIGUOUS_GIVEN.contains(&buf.as_str());
        let last = run.len() - 1;
        let end_word = if cjk {
            // Two CJK parts after a context word (`by 木村 陽一`).
            (context && run.len() >= 2).then(|| run[1])
        } else if run.len() >= 2 {
            let any_surname = run[1..]
                .iter()
                .any(|&r| !is_initial(text, &r) && in_list(word(r), false, &mut buf));
            (strong
                || (given && (!ambiguous || context))
                || (context && (given || any_surname || in_list(first, false, &mut buf))))
            .then(|| run[last])
        } else if titled && (in_list(first, false, &mut buf) || strong) {
            // `Mr. Smith`, `Dr. Okafor` (a title makes one capitalised word a name).
            Some(w)
        } else {
            None
        };
        let Some(e) = end_word else {
            continue;
        };
        // The title is part of the name; so is a suffix (`Jr.`, `DDS`).
        let start = match prev {
            Some(p) if titled => p.start,
            _ => w.start,
        };
        let mut end = e.end;
        if let Some(next) = next_word(text, end)
            && matches!(&text[end..next.start], " " | ", ")
            && NAME_SUFFIXES.contains(&word(next))
        {
            end = next.end;
            if text[end..].starts_with('.') {
                end += 1;
            }
        }
        out.push((start, end));
        pos = end;
        last_end = end;
    }
    out
}

/// Whether a word starts at `at` (an alphabetic character not inside a run of letters,
/// apostrophes and hyphens that started before it), as [`next_word`] splits words.
fn word_starts_at(text: &str, at: usize) -> bool {
    if !text[at..].chars().next().is_some_and(char::is_alphabetic) {
        return false;
    }
    for c in text[..at].chars().rev() {
        if c.is_alphabetic() {
            return false;
        }
        if !matches!(c, '\'' | '-' | '’') {
            return true;
        }
    }
    true
}

/// The word that ends right before `at` with only a blank (or `. `, `, `, `: `) between, as
/// [`next_word`] would have returned it.
fn previous_word(text: &str, at: usize) -> Option<Word> {
    let before = &text[..at];
    let end = [" ", ". ", ", ", ": ", "\u{3000}"]
        .iter()
        .filter_map(|gap| before.strip_suffix(gap))
        .find(|rest| rest.chars().next_back().is_some_and(char::is_alphabetic))?
        .len();
    // Back over the run of letters, apostrophes and hyphens, then on to its first letter.
    let run_start = text[..end]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_word_char(c))
        .last()
        .map_or(end, |(i, _)| i);
    let start = run_start
        + text[run_start..end]
            .char_indices()
            .find(|&(_, c)| c.is_alphabetic())
            .map_or(0, |(i, _)| i);
    Some(Word { start, end })
}

/// Whether a JSON/`key: value` key names a person (`customer_name`, `lastName`, `contact`).
/// `bare_name` is set for keys that are just `name`: the caller checks the value's shape.
pub fn name_key(normalised: &str, keys: &[String]) -> Option<bool> {
    if normalised == "name" || normalised == "names" {
        return Some(true);
    }
    keys.iter()
        .any(|k| normalised == k || (k.len() > 6 && normalised.ends_with(k.as_str())))
        .then_some(false)
}

/// A value shaped like a person's name: 2–4 capitalised words of letters (initials allowed).
pub fn looks_like_person_name(value: &str) -> bool {
    let parts: Vec<&str> = value.split_whitespace().collect();
    (2..=5).contains(&parts.len())
        && parts.iter().all(|p| {
            let p = p.trim_end_matches([',', '.']);
            PARTICLES.contains(&p)
                || (!p.is_empty()
                    && p.chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() && !c.is_lowercase())
                    && p.chars().all(|c| is_word_char(c) || c == '.'))
        })
        && parts.iter().any(|p| !PARTICLES.contains(p))
        || starts_with_given_name(&parts)
}

/// 2–5 words of letters, the first a given name from the lists (`Florence auch Schlauchin`).
fn starts_with_given_name(parts: &[&str]) -> bool {
    let mut buf = String::new();
    (2..=5).contains(&parts.len())
        && parts.iter().all(|p| p.chars().all(is_word_char))
        && capitalised(parts[0])
        && in_list(parts[0], true, &mut buf)
}

/// Whether a key names a postal address (`address`, `street`, `billing_address`,
/// `address_line1`), not a network or e-mail one.
pub fn address_key(normalised: &str) -> bool {
    const NOT: &[&str] = &[
        "ip",
        "email",
        "mail",
        "mac",
        "remote",
        "local",
        "bind",
        "listen",
        "server",
        "host",
        "wallet",
        "contract",
        "socket",
        "peer",
        "url",
        "web",
        "node",
        "memory",
        "base",
        "return",
        "proxy",
        "gateway",
        "network",
        "public",
        "private",
        "broadcast",
        "source",
        "destination",
        "src",
        "dst",
        "v4",
        "v6",
        "family",
        "type",
        "space",
    ];
    const POSTAL: &[&str] = &["mailing", "postal", "billing", "shipping", "home", "street"];
    if normalised.contains("street") || normalised.starts_with("addressline") {
        return true;
    }
    if !normalised.contains("address") && !normalised.contains("adresse") {
        return false;
    }
    POSTAL.iter().any(|p| normalised.contains(p)) || !NOT.iter().any(|n| normalised.contains(n))
}

// ---------------------------------------------------------------------------------------------
// Street addresses

/// Street types that follow the street name (`Main Street`, `Pennsylvania Ave`, `Erin
/// Mission`): the USPS Publication 28 suffixes (each also in the plural) and their usual
/// abbreviations, plus British ones.
const STREET_TYPES: &[&str] = &[
    "Alley",
    "Allee",
    "Aly",
    "Annex",
    "Anex",
    "Arcade",
    "Avenue",
    "Ave",
    "Av",
    "Bayou",
    "Beach",
    "Bend",
    "Bluff",
    "Bottom",
    "Boulevard",
    "Blvd",
    "Branch",
    "Bridge",
    "Brook",
    "Burg",
    "Bypass",
    "Camp",
    "Canyon",
    "Cape",
    "Causeway",
    "Center",
    "Centre",
    "Circle",
    "Cir",
    "Cliff",
    "Club",
    "Common",
    "Corner",
    "Course",
    "Court",
    "Ct",
    "Cove",
    "Creek",
    "Crescent",
    "Cres",
    "Crest",
    "Crossing",
    "Crossroad",
    "Curve",
    "Dale",
    "Dam",
    "Divide",
    "Drive",
    "Dr",
    "Estate",
    "Expressway",
    "Extension",
    "Fall",
    "Ferry",
    "Field",
    "Flat",
    "Ford",
    "Forest",
    "Forge",
    "Fork",
    "Fort",
    "Freeway",
    "Garden",
    "Gateway",
    "Glen",
    "Green",
    "Grove",
    "Harbor",
    "Harbour",
    "Haven",
    "Heights",
    "Highway",
    "Hwy",
    "Hill",
    "Hollow",
    "Inlet",
    "Island",
    "Isle",
    "Junction",
    "Key",
    "Knoll",
    "Lake",
    "Land",
    "Landing",
    "Lane",
    "Ln",
    "Light",
    "Loaf",
    "Lock",
    "Lodge",
    "Loop",
    "Mall",
    "Manor",
    "Meadow",
    "Mews",
    "Mill",
    "Mission",
    "Motorway",
    "Mount",
    "Mountain",
    "Neck",
    "Orchard",
    "Oval",
    "Overpass",
    "Park",
    "Parkway",
    "Pkwy",
    "Pass",
    "Passage",
    "Path",
    "Pike",
    "Pine",
    "Place",
    "Pl",
    "Plain",
    "Plaza",
    "Point",
    "Port",
    "Prairie",
    "Radial",
    "Ramp",
    "Ranch",
    "Rapid",
    "Rest",
    "Ridge",
    "River",
    "Road",
    "Rd",
    "Route",
    "Row",
    "Rue",
    "Run",
    "Shoal",
    "Shore",
    "Skyway",
    "Spring",
    "Spur",
    "Square",
    "Sq",
    "Station",
    "Stravenue",
    "Stream",
    "Street",
    "St",
    "Summit",
    "Terrace",
    "Ter",
    "Throughway",
    "Trace",
    "Track",
    "Trafficway",
    "Trail",
    "Trl",
    "Trailer",
    "Tunnel",
    "Turnpike",
    "Underpass",
    "Union",
    "Valley",
    "Viaduct",
    "View",
    "Village",
    "Ville",
    "Vista",
    "Walk",
    "Wall",
    "Way",
    "Well",
    "Close",
    "Gardens",
    "Grove",
    "Rise",
    "Vale",
    "Wharf",
    "Parade",
    "Drove",
    "Gate",
    "Hills",
    "Lawn",
    "Mead",
    "Yard",
    "Wynd",
    "Quay",
    "Circus",
    "Crossway",
    "Esplanade",
];

fn is_street_type(word: &str) -> bool {
    let w = word.trim_end_matches('.');
    STREET_TYPES.contains(&w)
        || w.strip_suffix('s')
            .is_some_and(|singular| singular.len() >= 3 && STREET_TYPES.contains(&singular))
}

/// Units that can come first, on their own line (`Flat 8\nVanessa Knolls`, `Studio 3, Reed Pass`).
const LEADING_UNITS: &[&str] = &["Flat", "Studio", "Apartment", "Apt", "Unit", "Suite"];

/// Word endings that make a word a street name in German, Dutch, Nordic and Finnish forms
/// (`Hauptstraße`, `Kerkstraat`, `Koskikatu`, `Storgatan`).
const STREET_SUFFIXES: &[&str] = &[
    "straße",
    "strasse",
    "str.",
    "weg",
    "gasse",
    "platz",
    "allee",
    "ring",
    "damm",
    "ufer",
    "chaussee",
    "steig",
    "pfad",
    "straat",
    "laan",
    "plein",
    "gracht",
    "kade",
    "singel",
    "dreef",
    "hof",
    "katu",
    "tie",
    "kuja",
    "polku",
    "gatan",
    "vägen",
    "gata",
    "vej",
    "gade",
    "veien",
    "gaten",
    "stieg",
    "markt",
    "berg",
    "road",
    "street",
    "lane",
    "baan",
    "boulevard",
    "dijk",
    "steeg",
    "pad",
    "park",
];

/// Street types that lead (`Via Roma 12`, `Calle Mayor, 3`, `rue de la Paix`).
const LEADING_TYPES: &[&str] = &[
    "Via",
    "Viale",
    "Piazza",
    "Piazzale",
    "Corso",
    "Largo",
    "Vicolo",
    "Borgo",
    "Contrada",
    "Strada",
    "Rotonda",
    "Canale",
    "Stretto",
    "Incrocio",
    "Calle",
    "Avenida",
    "Avinguda",
    "Camino",
    "Paseo",
    "Plaza",
    "Ronda",
    "Carrer",
    "Carrera",
    "Cañada",
    "Callejón",
    "Acceso",
    "Alameda",
    "Urbanización",
    "Vía",
    "Vial",
    "Pasadizo",
    "Pasaje",
    "Glorieta",
    "Rambla",
    "Travesía",
    "Cuesta",
    "Plazuela",
    "Partida",
    "Rue",
    "rue",
    "Avenue",
    "avenue",
    "Boulevard",
    "boulevard",
    "Bd",
    "Chemin",
    "chemin",
    "Allée",
    "allée",
    "Impasse",
    "impasse",
    "Quai",
    "quai",
    "Place",
    "place",
    "Rua",
    "Avda",
    "Av.",
    "C.",
    "Pl.",
];

/// Unit markers after an address (`Apt. 864`, `Suite 200`, `#4`).
const UNITS: &[&str] = &[
    "Apt",
    "Apt.",
    "Apartment",
    "Suite",
    "Ste",
    "Ste.",
    "Unit",
    "Flat",
    "Floor",
    "Fl",
    "Piso",
    "Puerta",
    "Etage",
    "Bus",
    "Box",
    "Piano",
    "Appartamento",
    "Interno",
    "Scala",
    "Stock",
    "Whg.",
    "Wohnung",
    "Escalera",
];

fn is_house_number(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    (1..=6).contains(&digits)
        && (digits == b.len()
            || (b.len() == digits + 1 && b[digits].is_ascii_alphabetic())
            || (matches!(b[digits], b'-' | b'/')
                && b.len() > digits + 1
                && b[digits + 1..].iter().all(u8::is_ascii_alphanumeric)))
}

/// Tokens separated by single spaces (and an optional comma) from `at`: (start, end) of each.
fn tokens(text: &str, at: usize, max: usize) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = at;
    while out.len() < max && i < b.len() {
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b'"' | b';') {
            i += 1;
        }
        if i == start {
            break;
        }
        out.push((start, i));
        // One separator: ` `, `, `.
        if b.get(i) == Some(&b',') {
            i += 1;
        }
        if b.get(i) == Some(&b' ') {
            i += 1;
        } else {
            break;
        }
    }
    out
}

/// A unit after an address ending at `end` (`, Apt. 864`, ` Suite 200`): the new end.
fn unit_end(text: &str, end: usize) -> usize {
    let toks = tokens(text, end + usize::from(text[end..].starts_with(' ')), 2);
    let toks = if text[end..].starts_with(", ") {
        tokens(text, end + 2, 2)
    } else {
        toks
    };
    if let [(a, b), (c, d)] = toks[..]
        && UNITS.contains(&&text[a..b])
        && text[c..d].bytes().any(|x| x.is_ascii_digit())
        && text[c..d].len() <= 6
    {
        return d;
    }
    if let [(a, b), ..] = toks[..]
        && text[a..b].starts_with('#')
        && text[a + 1..b].bytes().all(|x| x.is_ascii_alphanumeric())
        && b > a + 1
    {
        return b;
    }
    end
}

/// A capitalised word (`Pennsylvania`), or one in a script without case (`佐々木`).
fn is_cap_word(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() && !c.is_lowercase())
        && s.chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-' || c == '々')
}

fn is_name_part(s: &str) -> bool {
    is_cap_word(s)
        || matches!(
            s,
            "de" | "del"
                | "de la"
                | "la"
                | "le"
                | "les"
                | "des"
                | "du"
                | "di"
                | "da"
                | "dei"
                | "della"
                | "delle"
                | "van"
                | "von"
                | "der"
                | "den"
                | "y"
                | "e"
                | "d'"
                | "l'"
        )
        || s.starts_with("d'")
        || s.starts_with("l'")
        || s.bytes().all(|c| c.is_ascii_digit()) && s.len() <= 2
}

/// Byte spans of street addresses in free text.
pub fn find_addresses(text: &str) -> Vec<(usize, usize)> {
    /// Bytes of a token: ASCII letters and digits, and every byte of a non-ASCII character.
    const TOKEN: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || b >= 0x80;
            c += 1;
        }
        t
    };
    let b = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    let n = b.len();
    // The end of the token (ASCII letters and digits, any non-ASCII byte) at `at`.
    let token_run_end = |at: usize| {
        at + b[at..]
            .iter()
            .position(|&c| !TOKEN[usize::from(c)])
            .unwrap_or(n - at)
    };
    let mut i = 0;
    while i < n {
        // On to the next token start (tokens start after a byte that is not part of one).
        match b[i..].iter().position(|&c| TOKEN[usize::from(c)]) {
            Some(k) => i += k,
            None => break,
        }
        let c = b[i];
        // Lower-case tokens: only the French leading types (`rue`, `avenue`, …) can start an
        // address; skip the others without measuring them.
        if c.is_ascii_lowercase() && !matches!(c, b'r' | b'a' | b'b' | b'c' | b'i' | b'q' | b'p') {
            i = token_run_end(i);
            continue;
        }
        // Cheap test of the first token before parsing: a house number, a leading street type
        // or unit, or a capitalised word with a street suffix.
        let token_end = i + b[i..]
            .iter()
            .position(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'"' | b';' | b'\\'))
            .unwrap_or(b.len() - i);
        let token = &text[i..token_end];
        let promising = if c.is_ascii_digit() {
            // A number, then a capitalised word (or `, ` and a French street type).
            let next = match b.get(token_end..token_end + 3) {
                Some([b' ', n, _]) => Some(*n),
                // `814, boulevard …`
                Some([b',', b' ', n]) => Some(*n).filter(u8::is_ascii_lowercase),
                _ => None,
            };
            next.is_some_and(|n| {
                n.is_ascii_uppercase()
                    || n >= 0x80
                    || matches!(n, b'r' | b'a' | b'b' | b'c' | b'i' | b'q' | b'p')
            }) && is_house_number(token)
        } else if c.is_ascii_lowercase() {
            // Lower-case leading types (French).
            matches!(
                token,
                "rue" | "avenue" | "boulevard" | "chemin" | "allée" | "impasse" | "quai" | "place"
            )
        } else {
            token.len() >= 2
                && (leading_type(token)
                    || LEADING_UNITS.contains(&token)
                    || (token.len() >= 6 && has_street_suffix(token)))
        };
        if promising && let Some(end) = address_at(text, i) {
            out.push((i, end));
            // An address that ends inside a token: the rest of it starts nothing.
            i = if TOKEN[usize::from(b[end - 1])] {
                token_run_end(end)
            } else {
                end
            };
        } else {
            i = token_run_end(i);
        }
    }
    out
}

fn address_at(text: &str, at: usize) -> Option<usize> {
    let b = text.as_bytes();
    // `Flat 8\nVanessa Knolls`, `Studio 3, Reed Pass`: a unit, a line break (real or escaped)
    // or a comma, then a street without a number.
    if let [(s0, e0), (s1, e1), ..] = tokens(text, at, 2)[..]
        && LEADING_UNITS.contains(&&text[s0..e0])
    {
        let unit = &text[s1..e1];
        let unit_len = unit
            .find("\\n")
            .or_else(|| unit.find('\n'))
            .unwrap_or(unit.len());
        if (1..=5).contains(&unit_len) && unit.as_bytes()[0].is_ascii_digit() {
            let mut street = s1 + unit_len;
            for sep in ["\\n", "\n", ", ", " "] {
                if text[street..].starts_with(sep) {
                    street += sep.len();
                    break;
                }
            }
            if street > s1 + unit_len {
                let toks = tokens(text, street, 5);
                for (k, &(s, e)) in toks.iter().enumerate() {
                    if k > 0 && is_street_type(&text[s..e]) {
                        return Some(e);
                    }
                    if !is_cap_word(&text[s..e]) {
                        break;
                    }
                }
            }
        }
    }
    if b[at].is_ascii_digit() {
        // `1600 Pennsylvania Ave NW`, `5 rue de la Paix`, `221B Baker Street`.
        let toks = tokens(text, at, 8);
        let (s0, e0) = *toks.first()?;
        // `814, boulevard de Rodrigues` (French) has a comma after the number.
        let french = text[e0..].starts_with(", ")
            && toks
                .get(1)
                .is_some_and(|&(s, e)| LEADING_TYPES.contains(&&text[s..e]));
        if !is_house_number(&text[s0..e0]) || (text[e0..].starts_with(',') && !french) {
            return None;
        }
        let rest = &toks[1..];
        // Leading type right after the number (French).
        if let Some(&(s, e)) = rest.first()
            && LEADING_TYPES.contains(&&text[s..e])
        {
            let mut end = None;
            for &(s, e) in rest.iter().skip(1).take(5) {
                if is_name_part(&text[s..e]) {
                    end = Some(e);
                    if text[e..].starts_with(',') {
                        break;
                    }
                } else {
                    break;
                }
            }
            return end.map(|e| unit_end(text, e));
        }
        for (k, &(s, e)) in rest.iter().enumerate().take(5) {
            let w = text[s..e].trim_end_matches('.');
            if k > 0 && is_street_type(w) {
                let mut end = if text[s..e].ends_with('.') {
                    e
                } else {
                    s + w.len()
                };
                // A direction after the type.
                if let Some(&(ds, de)) = rest.get(k + 1)
                    && matches!(
                        &text[ds..de],
                        "NW" | "NE" | "SW" | "SE" | "N" | "S" | "E" | "W"
                    )
                    && !text[end..ds].contains(',')
                {
                    end = de;
                }
                return Some(unit_end(text, end));
            }
            if !is_cap_word(&text[s..e]) || text[e..].starts_with(',') {
                // A street word with a street suffix ends the name (`12 Kerkstraat`).
                return (k == 0 && has_street_suffix(&text[s..e]))
                    .then(|| unit_end(text, house_number_end(text, e)));
            }
            if has_street_suffix(&text[s..e]) && k == 0 {
                return Some(unit_end(text, house_number_end(text, e)));
            }
        }
        return None;
    }
    // `Hauptstraße 5`, `Koskikatu 25 Apt. 864`, `Via Roma 12`, `Calle Mayor, 3`.
    let toks = tokens(text, at, 7);
    let (s0, e0) = *toks.first()?;
    let first = &text[s0..e0];
    let leading = leading_type(first);
    if !(leading || (is_cap_word(first) && has_street_suffix(first))) {
        return None;
    }
    // Name words, then a house number; after an unambiguous leading type (`rue Clémence
    // Samson`, `Via Roma`), the name words alone.
    let unambiguous =
        leading && (!first.starts_with(char::is_uppercase) || !AMBIGUOUS_LEADING.contains(&first));
    let mut name_end = None;
    for (k, &(s, e)) in toks.iter().enumerate().skip(1) {
        let w = &text[s..e];
        if is_house_number(w) && (k > 1 || !leading) {
            return Some(unit_end(text, e));
        }
        if unambiguous && is_cap_word(w) {
            name_end = Some(e);
        } else if unambiguous && !is_name_part(w) {
            return name_end;
        }
        if text[e..].starts_with(',')
            && name_end.is_some()
            && !toks
                .get(k + 1)
                .is_some_and(|&(s, e)| is_house_number(&text[s..e]))
        {
            return name_end;
        }
        if !(is_name_part(w) || (leading && has_street_suffix(w))) || k > 5 {
            return None;
        }
        if w.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    name_end
}

/// Whether a token is a leading street type (hash lookup: this runs on every capitalised token).
fn leading_type(token: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str, foldhash::fast::RandomState>> = OnceLock::new();
    SET.get_or_init(|| LEADING_TYPES.iter().copied().collect())
        .contains(token)
}

/// Leading street types that are also English (or French) words at a sentence start, or bare
/// abbreviations: every other [`LEADING_TYPES`] entry is unambiguous.
const AMBIGUOUS_LEADING: &[&str] = &[
    "Plaza",
    "rue",
    "Avenue",
    "avenue",
    "Boulevard",
    "boulevard",
    "Bd",
    "chemin",
    "allée",
    "impasse",
    "quai",
    "Place",
    "place",
    "Av.",
    "C.",
    "Pl.",
];

/// A house number right after a street name ending at `end` (`Koskikatu 25`): its end.
fn house_number_end(text: &str, end: usize) -> usize {
    match tokens(text, end + usize::from(text[end..].starts_with(' ')), 1)[..] {
        [(s, e)] if s == end + 1 && is_house_number(&text[s..e]) => e,
        _ => end,
    }
}

/// Whether a word ends in a street suffix (`Hauptstraße`, `Kerkstraat`, `Ziegert-Platz`; ASCII
/// case-insensitive).
fn has_street_suffix(word: &str) -> bool {
    let w = word.as_bytes();
    STREET_SUFFIXES
        .iter()
        .any(|s| w.len() > s.len() + 2 && w[w.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        find_names(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    fn addresses(text: &str) -> Vec<&str> {
        find_addresses(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn names_in_free_text_are_found_by_gazetteer_and_context() {
        assert_eq!(names("requested by Linda Taylor today"), ["Linda Taylor"]);
        assert_eq!(names("John F. Kennedy spoke"), ["John F. Kennedy"]);
        assert_eq!(names("Dear Mr. Okafor, thanks"), ["Mr. Okafor"]);
        assert_eq!(names("cc Hans-Jürgen Müller"), ["Hans-Jürgen Müller"]);
    }

    #[test]
    fn capitalised_everyday_words_are_not_names() {
        for text in [
            "Will the release in May fix it? May Day is a holiday.",
            "In March the Kubernetes Operator and Google Cloud Storage were upgraded.",
            "New York and Long Island",
            "The Pipeline Service ran on Monday.",
            "August Rush",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }

    #[test]
    fn street_addresses_in_us_uk_and_eu_forms() {
        assert_eq!(
            addresses("ship to 1600 Pennsylvania Ave NW, Washington"),
            ["1600 Pennsylvania Ave NW"]
        );
        assert_eq!(
            addresses("at 6750 Koskikatu 25 Apt. 864 now"),
            ["6750 Koskikatu 25 Apt. 864"]
        );
        assert_eq!(addresses("Hauptstraße 5, 10115 Berlin"), ["Hauptstraße 5"]);
        assert_eq!(addresses("Via Roma 12, Milano"), ["Via Roma 12"]);
        assert_eq!(addresses("221B Baker Street"), ["221B Baker Street"]);
        assert_eq!(addresses("5 rue de la Paix"), ["5 rue de la Paix"]);
        assert!(addresses("deploy 3 Pods to the Cluster Way").is_empty());
        assert!(addresses("version 2 Release").is_empty());
    }
}
