//! `countersign mask [FILE|-] [--format json|text] [--report]`: masks a JSON document (or a
//! stream of them) or a text stream with the same engine the server uses. Text is processed in
//! chunks of whole lines (a PEM block is kept in one chunk), so memory stays bounded whatever the
//! input size. `--report` prints findings as JSON lines (type and location, never values).

use crate::mask::Masker;
use serde_json::json;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

const CHUNK: usize = 256 * 1024;
/// A PEM block may extend a chunk by at most this much.
const MAX_BLOCK: usize = 1024 * 1024;

/// Runs the command; exit 2 when the input cannot be read (or is not JSON with `--format json`).
pub fn run(
    masker: &Masker,
    input: Option<&Path>,
    json_mode: bool,
    report: bool,
) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn Read> = match input {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return Ok(ExitCode::from(2));
            }
        },
    };
    let reader = BufReader::with_capacity(1 << 20, reader);
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let result = if json_mode {
        mask_json_stream(masker, reader, &mut out, report)
    } else {
        mask_text_stream(masker, reader, &mut out, report)
    };
    match result {
        Ok(()) => {
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn mask_json_stream(
    masker: &Masker,
    reader: impl Read,
    out: &mut impl Write,
    report: bool,
) -> anyhow::Result<()> {
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<serde_json::Value>();
    for (index, doc) in stream.enumerate() {
        let doc = doc.map_err(|e| {
            anyhow::anyhow!(
                "input is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let masked = masker.mask_json(&doc);
        if report {
            for f in &masked.findings {
                let mut line = serde_json::to_value(f)?;
                line["document"] = json!(index);
                writeln!(out, "{line}")?;
            }
        } else {
            writeln!(out, "{}", masked.value)?;
        }
    }
    Ok(())
}

fn mask_text_stream(
    masker: &Masker,
    mut reader: impl BufRead,
    out: &mut impl Write,
    report: bool,
) -> anyhow::Result<()> {
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    let mut first_line = 1usize;
    loop {
        chunk.clear();
        let mut eof = false;
        // PEM markers start lines: count them as lines arrive, so a block is never split.
        let mut open_blocks = 0i64;
        while chunk.len() < CHUNK || (open_blocks > 0 && chunk.len() < CHUNK + MAX_BLOCK) {
            let start = chunk.len();
            if reader.read_until(b'\n', &mut chunk)? == 0 {
                eof = true;
                break;
            }
            let line = chunk[start..].trim_ascii_start();
            if line.starts_with(b"-----BEGIN ") {
                open_blocks += 1;
            } else if line.starts_with(b"-----END ") {
                open_blocks -= 1;
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&chunk);
        let (masked, findings) = masker.mask_text(&text);
        if report {
            let mut line = first_line;
            let mut line_start = 0;
            let mut scanned = 0;
            for f in &findings {
                for (i, b) in text.as_bytes()[scanned..f.start].iter().enumerate() {
                    if *b == b'\n' {
                        line += 1;
                        line_start = scanned + i + 1;
                    }
                }
                scanned = f.start;
                let report_line = json!({
                    "type": f.kind.as_str(),
                    "line": line,
                    "column": f.start - line_start + 1,
                    "length": f.end - f.start,
                    "detector": f.detector,
                });
                writeln!(out, "{report_line}")?;
            }
        } else {
            out.write_all(masked.as_bytes())?;
        }
        first_line += text.bytes().filter(|b| *b == b'\n').count();
        if eof {
            return Ok(());
        }
    }
}
