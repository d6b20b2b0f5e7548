//! Class files: `/etc/mail/local-host-names` (class `{w}`, this host's
//! own domains) and `/etc/mail/virtuser-domains` (class `{VirtHost}`), as
//! sendmail's `F{w}` reads them: words separated by white space, any
//! number a line; lines starting with `#` are comments.  Words compare
//! lower-cased and without a trailing dot.
//!
//! The editors ([`add_word`], [`remove_word`]) keep comments and the other
//! words where the admin wrote them.

use std::path::Path;

/// The words of a class file's text, lower-cased without a trailing dot,
/// with their lines.
pub fn words(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim_start().starts_with('#') {
            continue;
        }
        for w in l.split_whitespace() {
            out.push((w.trim_end_matches('.').to_ascii_lowercase(), i + 1));
        }
    }
    out
}

/// The words of the class file `path` (none when it cannot be read).
pub fn read_words(path: &Path) -> Vec<(String, usize)> {
    words(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Add `word` on a line of its own unless present.
pub fn add_word(text: &str, word: &str) -> String {
    if words(text).iter().any(|(w, _)| w == word) {
        return text.to_string();
    }
    let mut out: String = text.lines().map(|l| format!("{l}\n")).collect();
    out.push_str(word);
    out.push('\n');
    out
}

/// Remove `word` wherever it is; `None` when absent.
pub fn remove_word(text: &str, word: &str) -> Option<String> {
    let mut hit = false;
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        if l.trim_start().starts_with('#') {
            out.push_str(l);
            out.push('\n');
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        let kept: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !w.trim_end_matches('.').eq_ignore_ascii_case(word))
            .collect();
        if kept.len() == words.len() {
            out.push_str(l);
            out.push('\n');
        } else {
            hit = true;
            if !kept.is_empty() {
                out.push_str(&kept.join(" "));
                out.push('\n');
            }
        }
    }
    hit.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_files() {
        let t = "# domains\nexample.com shop.example\n";
        assert_eq!(add_word(t, "example.com"), t);
        assert_eq!(add_word(t, "new.example"), format!("{t}new.example\n"));
        assert_eq!(
            remove_word(t, "shop.example").unwrap(),
            "# domains\nexample.com\n"
        );
        assert_eq!(
            words("# x.example\nA.Example. b.example\n"),
            [("a.example".to_string(), 2), ("b.example".to_string(), 2)]
        );
    }
}
