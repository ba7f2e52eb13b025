//! Phone-number validation with libphonenumber's metadata, through the `phonenumber` crate's
//! parser and validator, with the metadata loaded per country calling code on first use.
//!
//! The crate's default database builds every pattern of all 254 territories the first time
//! any number is parsed (about 600 million instructions, 90 ms: more than masking 10 MB takes),
//! and shares one 100-entry regex cache between them. Here each calling code gets a database
//! of its own territories only (`1`: the 25 NANP ones, `44`: GB, GG, IM, JE), parsed from the
//! same metadata file the crate version ships (`data/PhoneNumberMetadata.xml`, libphonenumber
//! 9.0.33, Apache-2.0).

use phonenumber::country::Id;
use phonenumber::metadata::{Database, Metadata};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

const METADATA: &str = include_str!("data/PhoneNumberMetadata.xml");

/// One `<territory …>…</territory>` element of the metadata.
struct Territory {
    id: &'static str,
    code: u16,
    element: &'static str,
}

fn territories() -> &'static [Territory] {
    static TERRITORIES: OnceLock<Vec<Territory>> = OnceLock::new();
    TERRITORIES.get_or_init(|| {
        let attribute = |head: &'static str, name: &str| -> Option<&'static str> {
            let at = head.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(&head[at..at + head[at..].find('"')?])
        };
        memchr::memmem::find_iter(METADATA.as_bytes(), "<territory ")
            .filter_map(|start| {
                let rest = &METADATA[start..];
                let head = &rest[..rest.find('>')?];
                let end = rest.find("</territory>")? + "</territory>".len();
                Some(Territory {
                    id: attribute(head, "id")?,
                    code: attribute(head, "countryCode")?.parse().ok()?,
                    element: &rest[..end],
                })
            })
            .collect()
    })
}

/// The metadata of every territory of one calling code, built on first use.
fn database(code: u16) -> Option<Arc<Database>> {
    static DATABASES: OnceLock<Mutex<HashMap<u16, Option<Arc<Database>>>>> = OnceLock::new();
    let mut databases = DATABASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    databases
        .entry(code)
        .or_insert_with(|| {
            let mut xml = String::from("<phoneNumberMetadata><territories>");
            let mut any = false;
            for t in territories().iter().filter(|t| t.code == code) {
                xml.push_str(t.element);
                any = true;
            }
            xml.push_str("</territories></phoneNumberMetadata>");
            any.then(|| Database::parse(&xml).ok().map(Arc::new))
                .flatten()
        })
        .clone()
}

/// The calling code of a region (`US` → 1).
pub(super) fn region_code(region: Id) -> Option<u16> {
    territories()
        .iter()
        .find(|t| t.id == region.as_ref())
        .map(|t| t.code)
}

/// Whether `candidate` is a valid number of `region` written in its national format.
pub(super) fn valid_national(region: Id, code: u16, candidate: &str) -> bool {
    let Some(db) = database(code) else {
        return false;
    };
    let Some(meta) = db.by_id(region.as_ref()) else {
        return false;
    };
    // Dialled from the region to another country (`00 682 57318` from the Netherlands): the
    // international number after the region's international prefix, as libphonenumber reads it.
    if candidate.starts_with('0')
        && let Some(idd) = meta.international_prefix()
    {
        let digits: String = candidate
            .chars()
            .take_while(|c| !c.is_ascii_alphabetic())
            .filter(char::is_ascii_digit)
            .collect();
        if let Some(m) = idd.find(&digits)
            && m.start() == 0
            && m.end() < digits.len()
            && !digits[m.end()..].starts_with('0')
        {
            return valid_international(&format!("+{}", &digits[m.end()..]));
        }
    }
    if !possible_length(meta, candidate) {
        return false;
    }
    phonenumber::parse_with(&db, Some(region), candidate)
        .is_ok_and(|n| phonenumber::is_valid_with(&db, &n))
}

/// Whether a national number of the region can have as many digits as `candidate` (before an
/// extension), with or without the national prefix, by the metadata's possible lengths of every
/// number type (libphonenumber's documented use of them: pruning what cannot be a number of the
/// region before parsing it). Regions whose national prefix is a parsing rule are not pruned.
fn possible_length(meta: &Metadata, candidate: &str) -> bool {
    if meta.national_prefix_for_parsing().is_some()
        || meta.national_prefix_transform_rule().is_some()
    {
        return true;
    }
    let number = &candidate[..candidate
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(candidate.len())];
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let prefix = meta.national_prefix().filter(|p| {
        number
            .bytes()
            .filter(u8::is_ascii_digit)
            .take(p.len())
            .eq(p.bytes())
    });
    let d = meta.descriptors();
    let lengths = [
        Some(d.general()),
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|desc| desc.possible_length().iter().map(|&l| usize::from(l)));
    let mut any = false;
    for length in lengths {
        any = true;
        if digits == length || prefix.is_some_and(|p| digits == length + p.len()) {
            return true;
        }
    }
    // No lengths in the metadata: nothing to prune by.
    !any
}

/// Whether `candidate` (`+` and a calling code first) is a valid international number.
pub(super) fn valid_international(candidate: &str) -> bool {
    // Calling codes are prefix-free: at most one of the 1-, 2- and 3-digit prefixes is one.
    let mut prefix = 0u16;
    let mut code = None;
    for d in candidate[1..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .take(3)
    {
        prefix = prefix * 10 + u16::from(d - b'0');
        if territories().iter().any(|t| t.code == prefix) {
            code = Some(prefix);
            break;
        }
    }
    let Some(code) = code else {
        return false;
    };
    let Some(db) = database(code) else {
        return false;
    };
    phonenumber::parse_with(&db, None, candidate).is_ok_and(|n| phonenumber::is_valid_with(&db, &n))
}
