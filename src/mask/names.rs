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

struct Gazetteer {
    given: HashSet<&'static str, foldhash::fast::RandomState>,
    surnames: HashSet<&'static str, foldhash::fast::RandomState>,
}

fn gazetteer() -> &'static Gazetteer {
    static G: OnceLock<Gazetteer> = OnceLock::new();
    G.get_or_init(|| {
        let set = |list: &'static str| {
            let mut s = HashSet::with_capacity_and_hasher(
                list.len() / 7,
                foldhash::fast::RandomState::default(),
            );
            s.extend(list.lines().filter(|l| !l.is_empty()));
            s
        };
        Gazetteer {
            given: set(include_str!("data/given_names.txt")),
            surnames: set(include_str!("data/surnames.txt")),
        }
    })
}

/// Loads the gazetteer now rather than on the first name lookup.
pub fn preload() {
    gazetteer();
}

/// Given names that are also everyday English words: a name only after a title or context word.
const AMBIGUOUS_GIVEN: &[&str] = &[
    "MAY", "WILL", "JUNE", "APRIL", "AUGUST", "MARCH", "JANUARY", "MARK", "BILL", "GRANT", "HOPE",
    "JOY", "FAITH", "DAWN", "SUE", "MAX", "PAT", "ART", "GUY", "RICH", "LONG", "YOUNG", "SUMMER",
    "AUTUMN", "WINTER", "CHRISTIAN", "PARIS", "CHINA", "LOVE", "CHANCE", "SAGE", "ROSE", "IVY",
    "DEAN", "FRANK", "NORMAN", "SHERMAN", "BROOK", "LANE", "WOOD", "MOHAMMED", "ROBIN", "CAROL",
    "KING", "PRINCE", "ANGEL", "BUNNY", "CANDY", "CRYSTAL", "DAISY", "GOLDIE", "HARMONY", "HONEY",
    "JEWEL", "LIBERTY", "MELODY", "PEARL", "PRECIOUS", "RUBY", "SHERRY", "SKY", "STORM", "SUNNY",
    "VAN", "TRUE", "GALE", "JACK", "JIMMY", "BRANDY", "CHERRY", "CLEMENT", "DELL", "ERNEST",
    "FOREST", "MASON", "MILES", "MONDAY", "NOBLE", "PIERCE", "REED", "SPENCER", "WARD", "WES",
    "STERLING", "CARMEN", "DALE", "GLEN", "HUNTER", "JUSTICE", "KEY", "LOGAN", "LINCOLN",
    "MADISON", "AVERY", "JORDAN", "TUESDAY", "RAY", "LEE", "DON", "SOL", "MAJOR", "DUKE", "EARL",
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
    "by", "from", "Dear", "dear", "cc", "Cc", "CC", "Hi", "Hello", "Hey", "Thanks", "contact",
    "customer", "approver", "requester", "reviewer", "owner", "signed", "attn", "Attn", "von",
    "par", "Regards", "regards", "Sincerely", "Hallo", "Bonjour", "Hola", "Ciao", "Beste",
];

/// One word of the text: its byte span and whether it starts with an upper-case letter.
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
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'E',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
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
            .is_some_and(|p| fold(p, buf) && g.given.contains(buf.as_str()))
    } else {
        parts.any(|p| fold(p, buf) && g.surnames.contains(buf.as_str()))
    }
}

/// Splits text into words (letters, apostrophes, inner hyphens).
fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_word_char(c) {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(Word { start: s, end: i });
        }
    }
    if let Some(s) = start {
        out.push(Word {
            start: s,
            end: text.len(),
        });
    }
    for w in &mut out {
        // Hyphens and apostrophes at the edges are punctuation.
        let t = &text[w.start..w.end];
        let trimmed = t.trim_matches(|c| c == '-' || c == '\'' || c == '’');
        if !trimmed.is_empty() {
            w.start += t.find(trimmed).unwrap_or(0);
            w.end = w.start + trimmed.len();
        }
    }
    out
}

/// Only blanks (one space, or `. ` after an initial or title) between two words.
fn adjacent(text: &str, a: &Word, b: &Word) -> bool {
    let gap = &text[a.end..b.start];
    matches!(gap, " " | ". " | "\u{a0}")
}

/// A middle initial between `a` and `c` (`John F. Kennedy`): the word and its gap.
fn is_initial(text: &str, w: &Word) -> bool {
    let s = &text[w.start..w.end];
    s.len() == 1
        && s.as_bytes()[0].is_ascii_uppercase()
        && text.as_bytes().get(w.end) == Some(&b'.')
}

/// Byte spans of person names in free text.
pub fn find_names(text: &str) -> Vec<(usize, usize)> {
    // Cheap exit: a name needs an upper-case ASCII or Latin letter followed by lower-case.
    let mut out = Vec::new();
    let ws = words(text);
    let mut buf = String::new();
    let mut i = 0;
    while i < ws.len() {
        let w = ws[i];
        let word = &text[w.start..w.end];
        if !capitalised(word) || TITLES.contains(&word) {
            i += 1;
            continue;
        }
        let prev = i
            .checked_sub(1)
            .filter(|&j| {
                let gap = &text[ws[j].end..w.start];
                matches!(gap, " " | ". " | ", " | ": ")
            })
            .map(|j| &text[ws[j].start..ws[j].end]);
        let titled = prev.is_some_and(|p| TITLES.contains(&p));
        let context = titled || prev.is_some_and(|p| CONTEXT.contains(&p));
        // The capitalised words that follow, up to three, each adjacent to the previous one
        // (a middle initial allowed).
        let mut j = i;
        let mut run = vec![i];
        while run.len() < 4 && j + 1 < ws.len() && adjacent(text, &ws[j], &ws[j + 1]) {
            let next = &text[ws[j + 1].start..ws[j + 1].end];
            if capitalised(next) || is_initial(text, &ws[j + 1]) {
                run.push(j + 1);
                j += 1;
            } else {
                break;
            }
        }
        // Drop a trailing initial.
        while run.len() > 1 && is_initial(text, &ws[*run.last().unwrap()]) {
            run.pop();
        }
        let given = in_list(word, true, &mut buf) && !FUNCTION_WORDS.contains(&word);
        let ambiguous = given && fold(word, &mut buf) && AMBIGUOUS_GIVEN.contains(&buf.as_str());
        let mut end_word = None;
        if run.len() >= 2 {
            // Given name, optional initial, surname (and a second surname).
            let mut k = 1;
            if is_initial(text, &ws[run[k]]) && run.len() > 2 {
                k += 1;
            }
            let sur = &text[ws[run[k]].start..ws[run[k]].end];
            let surname = !is_initial(text, &ws[run[k]]) && in_list(sur, false, &mut buf);
            if given && surname && (!ambiguous || context) {
                let mut last = k;
                if let Some(&more) = run.get(k + 1)
                    && in_list(&text[ws[more].start..ws[more].end], false, &mut buf)
                {
                    last = k + 1;
                }
                end_word = Some(run[last]);
            } else if titled || (context && (given || surname)) {
                end_word = Some(run[k.min(run.len() - 1)]);
            }
        } else if titled && in_list(word, false, &mut buf) {
            // `Mr. Smith`, `Dr. Okafor` (a title makes one surname a name).
            end_word = Some(i);
        }
        match end_word {
            Some(e) => {
                out.push((w.start, ws[e].end));
                i = e + 1;
            }
            None => i += 1,
        }
    }
    out
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
    (2..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            let p = p.trim_end_matches([',', '.']);
            !p.is_empty()
                && p.chars().next().is_some_and(char::is_uppercase)
                && p.chars().all(is_word_char)
        })
}

/// Whether a key names a postal address (`address`, `street`, `billing_address`,
/// `address_line1`), not a network or e-mail one.
pub fn address_key(normalised: &str) -> bool {
    const NOT: &[&str] = &[
        "ip", "email", "mail", "mac", "remote", "local", "bind", "listen", "server", "host", "wallet",
        "contract", "socket", "peer", "url", "web", "node", "memory", "base", "return", "proxy",
        "gateway", "network", "public", "private", "broadcast", "source", "destination", "src",
        "dst", "v4", "v6", "family", "type", "space",
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

/// Street types that follow the street name (`Main Street`, `Pennsylvania Ave`).
const STREET_TYPES: &[&str] = &[
    "Street", "St", "Avenue", "Ave", "Av", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
    "Dr", "Court", "Ct", "Way", "Place", "Pl", "Terrace", "Ter", "Parkway", "Pkwy", "Circle",
    "Cir", "Highway", "Hwy", "Square", "Sq", "Trail", "Trl", "Crescent", "Cres", "Close", "Grove",
    "Gardens", "Mews", "Row", "Hill", "Park", "Walk", "Green", "Rise", "Vale", "View", "Wharf",
    "Loop", "Run", "Pike", "Point", "Ridge", "Crossing", "Heights", "Port", "Pass", "Plaza",
    "Alley", "Expressway", "Freeway", "Junction", "Key", "Knoll", "Manor", "Meadow", "Meadows",
    "Mill", "Mills", "Orchard", "Oval", "Parade", "Shore", "Shores", "Spring", "Springs", "Station",
    "Summit", "Turnpike", "Valley", "Village", "Villages", "Well", "Wells", "Estates", "Extension",
    "Fork", "Forks", "Fort", "Harbor", "Harbour", "Haven", "Island", "Isle", "Lake", "Lakes",
    "Landing", "Light", "Lights", "Lock", "Locks", "Lodge", "Mall", "Mount", "Mountain", "Neck",
    "Pine", "Pines", "Plain", "Plains", "Prairie", "Radial", "Ramp", "Ranch", "Rapid", "Rapids",
    "Rest", "River", "Route", "Shoal", "Shoals", "Skyway", "Stream", "Street", "Throughway",
    "Trace", "Track", "Trafficway", "Tunnel", "Underpass", "Union", "Unions", "Viaduct", "Views",
    "Ville", "Vista", "Burg", "Burgs", "Bypass", "Camp", "Canyon", "Cape", "Causeway", "Center",
    "Centre", "Cliff", "Cliffs", "Club", "Common", "Commons", "Corner", "Corners", "Course",
    "Courts", "Cove", "Coves", "Creek", "Crest", "Curve", "Dale", "Dam", "Divide", "Drives",
    "Field", "Fields", "Flat", "Flats", "Ford", "Fords", "Forest", "Forge", "Forges", "Freeway",
    "Garden", "Gateway", "Glen", "Glens", "Greens", "Groves", "Harbors", "Hills", "Hollow", "Inlet",
    "Islands", "Junctions", "Keys", "Knolls", "Lakes", "Land", "Loaf", "Manors", "Motorway",
    "Mountains", "Overpass", "Parks", "Parkways", "Passage", "Path", "Ports", "Ridges", "Roads",
    "Squares", "Stravenue", "Streets", "Terrace", "Trailer", "Vales", "Ways",
];

/// Word endings that make a word a street name in German, Dutch, Nordic and Finnish forms
/// (`Hauptstraße`, `Kerkstraat`, `Koskikatu`, `Storgatan`).
const STREET_SUFFIXES: &[&str] = &[
    "straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer",
    "chaussee", "steig", "pfad", "straat", "laan", "plein", "gracht", "kade", "singel", "dreef",
    "hof", "katu", "tie", "kuja", "polku", "gatan", "vägen", "gata", "vej", "gade", "veien",
    "gaten", "stieg", "markt", "berg", "road", "street", "lane",
];

/// Street types that lead (`Via Roma 12`, `Calle Mayor, 3`, `rue de la Paix`).
const LEADING_TYPES: &[&str] = &[
    "Via", "Viale", "Piazza", "Piazzale", "Corso", "Largo", "Vicolo", "Borgo", "Contrada",
    "Strada", "Rotonda", "Calle", "Avenida", "Avinguda", "Camino", "Paseo", "Plaza", "Ronda",
    "Carrer", "Carrera", "Cañada", "Callejón", "Acceso", "Alameda", "Urbanización", "Vía",
    "Pasaje", "Glorieta", "Rambla", "Travesía", "Cuesta", "Plazuela", "Partida", "Rue", "rue",
    "Avenue", "avenue", "Boulevard", "boulevard", "Bd", "Chemin", "chemin", "Allée", "allée",
    "Impasse", "impasse", "Quai", "quai", "Place", "place", "Rua", "Avda", "Av.", "C.", "Pl.",
];

/// Unit markers after an address (`Apt. 864`, `Suite 200`, `#4`).
const UNITS: &[&str] = &[
    "Apt", "Apt.", "Apartment", "Suite", "Ste", "Ste.", "Unit", "Flat", "Floor", "Fl", "Piso",
    "Puerta", "Etage", "Bus", "Box",
];

fn is_house_number(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    (1..=6).contains(&digits)
        && (digits == b.len()
            || (b.len() == digits + 1 && b[digits].is_ascii_alphabetic())
            || (b[digits] == b'-' && b[digits + 1..].iter().all(u8::is_ascii_digit)))
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

fn is_cap_word(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    s.chars().next().is_some_and(char::is_uppercase) && s.chars().all(|c| c.is_alphabetic() || c == '\'' || c == '-')
}

fn is_name_part(s: &str) -> bool {
    is_cap_word(s)
        || matches!(
            s,
            "de" | "del" | "de la" | "la" | "le" | "les" | "des" | "du" | "di" | "da" | "dei"
                | "della" | "delle" | "van" | "von" | "der" | "den" | "y" | "e" | "d'" | "l'"
        )
        || s.starts_with("d'")
        || s.starts_with("l'")
        || s.bytes().all(|c| c.is_ascii_digit()) && s.len() <= 2
}

/// Byte spans of street addresses in free text.
pub fn find_addresses(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Token starts only: after a non-alphanumeric byte.
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] >= 0x80) {
            i += 1;
            continue;
        }
        let c = b[i];
        if !(c.is_ascii_digit() || c.is_ascii_alphabetic() || c >= 0x80) {
            i += 1;
            continue;
        }
        if let Some(end) = address_at(text, i) {
            out.push((i, end));
            i = end;
        } else {
            // Skip the rest of the token.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] >= 0x80) {
                i += 1;
            }
        }
    }
    out
}

fn address_at(text: &str, at: usize) -> Option<usize> {
    let b = text.as_bytes();
    if b[at].is_ascii_digit() {
        // `1600 Pennsylvania Ave NW`, `5 rue de la Paix`, `221B Baker Street`.
        let toks = tokens(text, at, 8);
        let (s0, e0) = *toks.first()?;
        if !is_house_number(&text[s0..e0]) || text[e0..].starts_with(',') {
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
            if k > 0 && STREET_TYPES.contains(&w) {
                let mut end = if text[s..e].ends_with('.') { e } else { s + w.len() };
                // A direction after the type.
                if let Some(&(ds, de)) = rest.get(k + 1)
                    && matches!(&text[ds..de], "NW" | "NE" | "SW" | "SE" | "N" | "S" | "E" | "W")
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
    let leading = LEADING_TYPES.contains(&first);
    if !(leading || (is_cap_word(first) && has_street_suffix(first))) {
        return None;
    }
    // Name words, then a house number.
    for (k, &(s, e)) in toks.iter().enumerate().skip(1) {
        let w = &text[s..e];
        if is_house_number(w) && (k > 1 || !leading) {
            return Some(unit_end(text, e));
        }
        if !(is_name_part(w) || (leading && has_street_suffix(w))) || k > 5 {
            return None;
        }
        if w.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    None
}

/// A house number right after a street name ending at `end` (`Koskikatu 25`): its end.
fn house_number_end(text: &str, end: usize) -> usize {
    match tokens(text, end + usize::from(text[end..].starts_with(' ')), 1)[..] {
        [(s, e)] if s == end + 1 && is_house_number(&text[s..e]) => e,
        _ => end,
    }
}

fn has_street_suffix(word: &str) -> bool {
    let lower = word.to_lowercase();
    STREET_SUFFIXES
        .iter()
        .any(|s| lower.len() > s.len() + 2 && lower.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        find_names(text).into_iter().map(|(s, e)| &text[s..e]).collect()
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
        assert_eq!(names("Dear Mr. Okafor, thanks"), ["Okafor"]);
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
