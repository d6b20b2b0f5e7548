//! The catalogue against the code: every log call in `src/` whose text is
//! a literal or a `format!` (or a variable built from one with
//! `push_str`) must have its entry, and every entry must be written
//! somewhere.  Calls whose text is made elsewhere (`&e`,
//! `&f.to_string()`) count as `{ERROR}` lines.

use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One call of `log::info/notice/warning/err/log` found in the source.
#[derive(Debug)]
struct Call {
    at: String,
    file: String,
    level: Level,
    qid: Qid,
    /// The normalised text: literal parts kept, each `{...}` as `{}`.
    shape: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The index just past a string literal starting at `i` (`"` or `r#"`).
fn skip_string(s: &[u8], mut i: usize) -> usize {
    if s[i] == b'r' {
        let mut hashes = 0;
        i += 1;
        while s[i] == b'#' {
            hashes += 1;
            i += 1;
        }
        i += 1;
        loop {
            if s[i] == b'"' && s[i + 1..].iter().take(hashes).all(|&c| c == b'#') {
                return i + 1 + hashes;
            }
            i += 1;
        }
    }
    i += 1;
    while s[i] != b'"' {
        if s[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn starts_string(s: &[u8], i: usize) -> bool {
    s[i] == b'"'
        || (s[i] == b'r'
            && (i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_'))
            && matches!(s.get(i + 1), Some(b'"') | Some(b'#')))
}

/// The index of the bracket closing the one at `open`.
fn closing(s: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    loop {
        if starts_string(s, i) {
            i = skip_string(s, i);
            continue;
        }
        match s[i] {
            b'\'' if s.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if s.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while s[i] != b'\'' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Arguments split at top-level commas.
fn arguments(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let (mut out, mut depth, mut start, mut i) = (Vec::new(), 0, 0, 0);
    while i < b.len() {
        if starts_string(b, i) {
            i = skip_string(b, i);
            continue;
        }
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim().to_string());
    }
    out
}

/// The text of the string literal that `expr` is or starts with
/// (`"..."`, `format!("...", ...)`), escapes undone.
fn literal(expr: &str) -> Option<String> {
    let e = expr.trim().trim_start_matches('&').trim();
    let e = e.strip_prefix("format!(").map(str::trim).unwrap_or(e);
    let b = e.as_bytes();
    if b.is_empty() || !starts_string(b, 0) {
        return None;
    }
    let end = skip_string(b, 0);
    let raw = &e[..end];
    let body = if raw.starts_with('r') {
        &raw[raw.find('"').unwrap() + 1..raw.rfind('"').unwrap()]
    } else {
        &raw[1..raw.len() - 1]
    };
    Some(body.replace("\\\"", "\"").replace("\\\\", "\\"))
}

/// `{...}` placeholders as `{}`; `{{` and `}}` as braces.
fn normalise(text: &str) -> String {
    let t = text.replace("{{", "\u{1}").replace("}}", "\u{2}");
    let mut out = String::new();
    let mut inside = false;
    for c in t.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out.replace('\u{1}', "{").replace('\u{2}', "}")
}

/// A local `name` built with `let [mut] name = format!(...)` before
/// `upto`, and every `name.push_str(...)` after it: its literal parts.
fn built_text(src: &str, upto: usize, name: &str) -> Option<String> {
    let before = &src[..upto];
    let start = [format!("let mut {name} = "), format!("let {name} = ")]
        .iter()
        .filter_map(|p| before.rfind(p.as_str()).map(|i| i + p.len()))
        .max()?;
    let b = before.as_bytes();
    let first = before[start..].trim_start();
    if !first.starts_with("format!(") {
        return None;
    }
    let open = start + before[start..].find('(')?;
    let mut text = literal(&before[start..=closing(b, open)])?;
    let push = format!("{name}.push_str(");
    let mut at = closing(b, open);
    while let Some(i) = before[at..].find(&push) {
        let open = at + i + push.len() - 1;
        let end = closing(b, open);
        text.push_str(&literal(&before[open + 1..end])?);
        at = end;
    }
    Some(text)
}

fn level_named(name: &str) -> Option<Level> {
    Some(match name.rsplit("::").next()? {
        "info" | "Info" => Level::Info,
        "notice" | "Notice" => Level::Notice,
        "warning" | "Warning" => Level::Warning,
        "err" | "Err" => Level::Err,
        _ => return None,
    })
}

/// Every log call under `src/` (outside `src/log/`), and how many calls
/// only pass on lines another process logged (`log::log(level, ...)`).
fn calls() -> (Vec<Call>, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let (mut found, mut relays) = (Vec::new(), 0);
    for path in files {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        if rel.starts_with("src/log/") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let b = src.as_bytes();
        let mut from = 0;
        while let Some(i) = src[from..].find("log::") {
            let at = from + i;
            from = at + 5;
            if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
                continue;
            }
            let line_start = src[..at].rfind('\n').map_or(0, |n| n + 1);
            if src[line_start..at].trim_start().starts_with("//") {
                continue;
            }
            let rest = &src[at + 5..];
            let Some(func) = ["info(", "notice(", "warning(", "err(", "log("]
                .iter()
                .find(|f| rest.starts_with(**f))
            else {
                continue;
            };
            let open = at + 5 + func.len() - 1;
            let mut args = arguments(&src[open + 1..closing(b, open)]);
            let level = if *func == "log(" {
                match level_named(&args[0]) {
                    Some(l) => {
                        args.remove(0);
                        l
                    }
                    None => {
                        relays += 1;
                        continue;
                    }
                }
            } else {
                level_named(func.trim_end_matches('(')).unwrap()
            };
            let qid = match args[0].as_str() {
                "None" => Qid::Never,
                a if a.starts_with("Some(") => Qid::Always,
                _ => Qid::IfAny,
            };
            let text = literal(&args[1]).or_else(|| {
                let name = args[1].trim_start_matches('&').trim();
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
                    .then(|| built_text(&src, at, name))
                    .flatten()
            });
            found.push(Call {
                at: format!("{rel}:{}", src[..at].lines().count() + 1),
                file: rel.clone(),
                level,
                qid,
                shape: text
                    .as_deref()
                    .map(normalise)
                    .unwrap_or_else(|| "{}".into()),
            });
        }
    }
    (found, relays)
}

/// Each text a catalogue shape may be written as in code: an optional part
/// as its text, as one `{}` (a variable holding it) or left out.
fn spellings(pieces: &[Piece]) -> BTreeSet<String> {
    let mut out = BTreeSet::from([String::new()]);
    for p in pieces {
        let alternatives: BTreeSet<String> = match p {
            Piece::Text(t) => BTreeSet::from([t.clone()]),
            Piece::Var(_) => BTreeSet::from(["{}".to_string()]),
            Piece::Optional(inner) => {
                let mut a = spellings(inner);
                a.insert("{}".into());
                a.insert(String::new());
                a
            }
        };
        out = out
            .iter()
            .flat_map(|s| alternatives.iter().map(move |a| format!("{s}{a}")))
            .collect();
    }
    out
}

/// The programs a source file belongs to, where that is clear.
fn programs_of(file: &str) -> Option<&'static [&'static str]> {
    Some(match file {
        f if f == "src/cli/panel.rs" || f.starts_with("src/panel/") => &["panel"],
        f if f.starts_with("src/pop3/") => &["pop3d"],
        f if f.starts_with("src/smtp/server/") => &["sendmail -bs"],
        f if f.starts_with("src/runner/") || f == "src/route.rs" => &["qrun", "mailroom"],
        "src/cli/deliver.rs" => &["deliver"],
        "src/cli/qrun.rs" => &["qrun"],
        "src/cli/pop3d.rs" => &["pop3d"],
        "src/cli/checkpassword.rs" | "src/login/checkpassword.rs" => &["checkpassword"],
        "src/cli/panel_helper.rs" => &["panel-helper"],
        f if f.starts_with("src/admin/panel/") => &["panel-helper"],
        f if f.starts_with("src/cli/") => &["sendmail"],
        f if f.starts_with("src/admin/") => &["mailroom"],
        f if f.starts_with("src/deliver/") || f.starts_with("src/filter/") => &["deliver"],
        _ => return None,
    })
}

fn matches(line: &Line, call: &Call) -> bool {
    line.level == call.level
        && line.qid == call.qid
        && spellings(&pieces(line.shape)).contains(&call.shape)
        && programs_of(&call.file).is_none_or(|ps| ps.iter().any(|p| line.programs.contains(p)))
}

#[test]
fn the_scan_finds_the_log_calls() {
    let (calls, relays) = calls();
    // A floor, so that a broken scanner cannot pass by finding nothing.
    assert!(calls.len() > 100, "{} calls", calls.len());
    assert_eq!(
        relays, 1,
        "the delivery child's lines, re-logged by its parent"
    );
    let from = calls
        .iter()
        .find(|c| {
            c.file == "src/queue/enqueue/mod.rs"
                && c.shape.starts_with("from=")
                && c.shape.ends_with("@localhost")
        })
        .expect("submission's from= line");
    assert_eq!(
        from.shape,
        "from={}, size={}, class={}, nrcpts={}{}{}, relay={}@localhost"
    );
}

#[test]
fn every_line_the_code_writes_is_in_the_catalogue() {
    let (calls, _) = calls();
    let missing: Vec<String> = calls
        .iter()
        .filter(|c| !LINES.iter().any(|l| matches(l, c)))
        .map(|c| format!("  {} ({:?}, qid {:?}): {:?}", c.at, c.level, c.qid, c.shape))
        .collect();
    assert!(
        missing.is_empty(),
        "log lines not in src/log/catalog.rs (add them, with programs, level and meaning):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_catalogue_entry_is_written_somewhere() {
    let (calls, _) = calls();
    let unused: Vec<String> = LINES
        .iter()
        .filter(|l| !calls.iter().any(|c| matches(l, c)))
        .map(|l| format!("  {:?} ({:?}): {}", l.programs, l.level, l.shape))
        .collect();
    assert!(
        unused.is_empty(),
        "catalogue entries no code writes (remove or correct them):\n{}",
        unused.join("\n")
    );
}

#[test]
fn entries_are_distinct_and_complete() {
    let mut seen = BTreeSet::new();
    for l in LINES {
        // Optional parts counted as present, variables as `{}`: two
        // entries alike in this would both match the same code.
        fn full(ps: &[Piece]) -> String {
            ps.iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Var(_) => "{}".into(),
                    Piece::Optional(inner) => full(inner),
                })
                .collect()
        }
        let full = full(&pieces(l.shape));
        let key = (format!("{:?}", l.level), format!("{:?}", l.qid), full);
        assert!(seen.insert(key), "twice: {}", l.shape);
        assert!(
            !l.programs.is_empty() && !l.meaning.is_empty(),
            "{}",
            l.shape
        );
        assert!(l.meaning.ends_with('.'), "{}", l.shape);
    }
}

#[test]
fn shapes_parse_into_text_variables_and_optional_parts() {
    assert_eq!(
        pieces("a={A}{?, b={B}}!"),
        vec![
            Piece::Text("a=".into()),
            Piece::Var("A".into()),
            Piece::Optional(vec![Piece::Text(", b=".into()), Piece::Var("B".into())]),
            Piece::Text("!".into()),
        ]
    );
    let s = spellings(&pieces("x{?, y={Y}}"));
    assert!(
        s.contains("x, y={}") && s.contains("x{}") && s.contains("x"),
        "{s:?}"
    );
    assert_eq!(normalise("to={rcpt}, n={:?} {{x}}"), "to={}, n={} {x}");
}
