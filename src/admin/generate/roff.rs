//! Just enough roff for the manual pages mailroom writes itself (clap_mangen
//! writes the `mailroom` command's): escaping, a page builder, and two
//! readers of the plain text the pages are made from — the man-like
//! headers of the programs (`src/bin/*.rs`) and Markdown module docs.

/// `s` as roff text: backslashes, minus signs, and a leading `.` or `'`
/// (which would start a request) made harmless.
pub fn escape(s: &str) -> String {
    let mut out = s.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// Text with inline markup: `code` and ``[`links`]`` in bold, `name(8)`
/// references with the name in bold.
pub fn inline(s: &str) -> String {
    // Markdown links: [text](target) -> text; [`x`] -> `x`.
    let mut plain = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        plain.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(']') {
            Some(j) if after[..j].starts_with('`') && after[..j].ends_with('`') && j > 1 => {
                plain.push_str(&after[..j]);
                rest = &after[j + 1..];
                if rest.starts_with('(')
                    && let Some(k) = rest.find(')')
                {
                    rest = &rest[k + 1..];
                }
            }
            _ => {
                plain.push('[');
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    let mut out = String::new();
    for (n, part) in plain.split('`').enumerate() {
        if n % 2 == 1 {
            out.push_str(&format!(
                "\\fB{}\\fR",
                escape(part).trim_start_matches("\\&")
            ));
        } else {
            out.push_str(&references(&escape(part)));
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// `name(5)` with the name in bold.
fn references(s: &str) -> String {
    let mut out = String::new();
    let mut copied = 0;
    for (i, _) in s.match_indices('(') {
        let b = s.as_bytes();
        let is_ref = i + 2 < b.len()
            && b[i + 1].is_ascii_digit()
            && b[i + 2] == b')'
            && i > 0
            && b[i - 1].is_ascii_alphanumeric();
        if !is_ref || i < copied {
            continue;
        }
        let start = s[..i]
            .rfind(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' || c == '\\')
            })
            .map_or(0, |p| p + 1)
            .max(copied);
        out.push_str(&s[copied..start]);
        out.push_str(&format!("\\fB{}\\fR({})", &s[start..i], b[i + 1] as char));
        copied = i + 3;
    }
    out.push_str(&s[copied..]);
    out
}

/// A manual page being written.
pub struct Page {
    out: String,
}

impl Page {
    /// `.TH`: a page called `name` in `section` of `manual`.
    pub fn new(name: &str, section: &str, manual: &str) -> Page {
        Page {
            out: format!(
                ".\\\" Written by mailroom generate; do not edit.\n.TH {} {section} \"\" \"mailroom {}\" \"{manual}\"\n",
                escape(name),
                env!("CARGO_PKG_VERSION")
            ),
        }
    }

    pub fn section(&mut self, title: &str) {
        self.out
            .push_str(&format!(".SH \"{}\"\n", escape(&title.to_uppercase())));
    }

    pub fn subsection(&mut self, title: &str) {
        self.out.push_str(&format!(".SS \"{}\"\n", escape(title)));
    }

    /// A paragraph of plain text with inline markup.
    pub fn paragraph(&mut self, text: &str) {
        self.out.push_str(".PP\n");
        self.text(text);
    }

    /// An item: `tag` (roff, already marked up) and its text.
    pub fn item(&mut self, tag: &str, text: &str) {
        self.out.push_str(&format!(".TP\n{tag}\n"));
        self.text(text);
    }

    /// Another paragraph of the current item.
    pub fn item_paragraph(&mut self, text: &str) {
        self.out.push_str(".IP\n");
        self.text(text);
    }

    /// A bullet (`mark` `\(bu`) or numbered (`1.`) list entry.
    pub fn list_entry(&mut self, mark: &str, text: &str) {
        let width = if mark.starts_with('\\') { 2 } else { 4 };
        self.out.push_str(&format!(".IP {mark} {width}\n"));
        self.text(text);
    }

    /// Lines shown as they are (an example).
    pub fn example(&mut self, lines: &[&str]) {
        self.out.push_str(".PP\n.RS 4\n.nf\n");
        for l in lines {
            self.out.push_str(&escape(l));
            self.out.push('\n');
        }
        self.out.push_str(".fi\n.RE\n");
    }

    /// roff written by the caller.
    pub fn raw(&mut self, roff: &str) {
        self.out.push_str(roff);
        if !roff.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Text lines: one sentence a line where the source ends a sentence
    /// with two spaces, as roff wants sentences.
    fn text(&mut self, text: &str) {
        let parts: Vec<&str> = text.split(".  ").collect();
        for (i, part) in parts.iter().enumerate() {
            let mut sentence = part.split_whitespace().collect::<Vec<_>>().join(" ");
            if i + 1 < parts.len() {
                sentence.push('.');
            }
            if !sentence.is_empty() {
                self.out.push_str(&inline(&sentence));
                self.out.push('\n');
            }
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// An option or file name as an item's tag: each comma-separated
/// alternative's first word in bold, the rest (its argument) in italics.
pub fn tag(text: &str) -> String {
    text.split(", ")
        .map(|alt| match alt.split_once(' ') {
            Some((word, arg)) => format!("\\fB{}\\fR \\fI{}\\fR", escape(word), escape(arg)),
            None => format!("\\fB{}\\fR", escape(alt)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `//!` header of a source file, without the markers.
pub fn doc_header(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            let l = &l[3..];
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A program's man-like header (`NAME`, `SYNOPSIS`, ... at the margin,
/// text indented four spaces; a line followed at once by lines indented
/// eight is an item and its text) written as the page `name(section)`.
pub fn program_page(name: &str, section: &str, header: &str) -> String {
    let mut page = Page::new(name, section, "System Manager's Manual");
    let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
    for line in header.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            sections.push((line.trim().to_string(), Vec::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push(line);
        }
    }
    for (title, body) in &sections {
        page.section(title);
        match title.as_str() {
            "NAME" => {
                let text = body
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let (names, what) = text.split_once(" — ").unwrap_or((&text, ""));
                page.raw(&format!("{} \\- {}", escape(names), escape(what)));
            }
            "SYNOPSIS" => {
                for (n, l) in body
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    if n > 0 {
                        page.raw(".br");
                    }
                    let (cmd, args) = l.split_once(' ').unwrap_or((l, ""));
                    page.raw(&format!("\\fB{}\\fR {}", escape(cmd), escape(args)));
                }
            }
            _ => blocks(&mut page, body),
        }
    }
    page.finish()
}

/// The indented body of one section of a program header.
fn blocks(page: &mut Page, body: &[&str]) {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut i = 0;
    let mut in_item = false;
    while i < body.len() {
        let l = body[i];
        if l.trim().is_empty() {
            i += 1;
            continue;
        }
        let mut para = vec![l.trim()];
        let level = indent(l);
        i += 1;
        if level <= 4 && i < body.len() && indent(body[i]) >= 8 && !body[i].trim().is_empty() {
            // An item: this line is its tag, the deeper lines its text.
            let tag_text = para[0];
            let mut text = Vec::new();
            while i < body.len() && indent(body[i]) >= 8 && !body[i].trim().is_empty() {
                text.push(body[i].trim());
                i += 1;
            }
            page.item(&tag(tag_text), &text.join(" "));
            in_item = true;
            continue;
        }
        while i < body.len() && !body[i].trim().is_empty() && indent(body[i]) == level {
            para.push(body[i].trim());
            i += 1;
        }
        if level >= 8 && in_item {
            page.item_paragraph(&para.join(" "));
        } else if level >= 8 {
            page.example(&para);
        } else {
            in_item = false;
            page.paragraph(&para.join(" "));
        }
    }
}

/// Markdown module documentation (paragraphs, `## headings`, `* ` and
/// `1. ` lists, ```` ``` ```` blocks) written into `page`; a heading
/// starts a section.
pub fn markdown(page: &mut Page, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim();
        if t.is_empty() {
            i += 1;
        } else if let Some(h) = t.strip_prefix("## ").or_else(|| t.strip_prefix("# ")) {
            page.section(h);
            i += 1;
        } else if t.starts_with("```") {
            let mut block = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim().starts_with("```") {
                block.push(lines[i]);
                i += 1;
            }
            i += 1;
            page.example(&block);
        } else if let Some((mark, first)) = list_mark(t) {
            let mut item = vec![first];
            i += 1;
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && lines[i].starts_with("  ")
                && list_mark(lines[i].trim()).is_none()
            {
                item.push(lines[i].trim());
                i += 1;
            }
            page.list_entry(&mark, &item.join(" "));
        } else {
            let mut para = vec![t];
            i += 1;
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && list_mark(lines[i].trim()).is_none()
                && !lines[i].trim().starts_with("```")
                && !lines[i].trim().starts_with('#')
            {
                para.push(lines[i].trim());
                i += 1;
            }
            page.paragraph(&para.join(" "));
        }
    }
}

/// `* text` -> (bullet, text); `3. text` -> ("3.", text).
fn list_mark(t: &str) -> Option<(String, &str)> {
    if let Some(rest) = t.strip_prefix("* ") {
        return Some(("\\(bu".to_string(), rest));
    }
    let (n, rest) = t.split_once(". ")?;
    (!n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (format!("{n}."), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_marked_up() {
        assert_eq!(escape(".so -x \\n"), "\\&.so \\-x \\en");
        assert_eq!(
            inline("see `-t` and qrun(8)."),
            "see \\fB\\-t\\fR and \\fBqrun\\fR(8)."
        );
        assert_eq!(inline("the [`Decision`] says"), "the \\fBDecision\\fR says");
        assert_eq!(inline("[`files`](mod@x) says"), "\\fBfiles\\fR says");
        assert_eq!(
            tag("-f sender, -r sender"),
            "\\fB\\-f\\fR \\fIsender\\fR, \\fB\\-r\\fR \\fIsender\\fR"
        );
    }

    #[test]
    fn a_program_header_becomes_sections_items_and_examples() {
        let page = program_page(
            "demo",
            "8",
            "NAME\n    demo — shows it\n\nSYNOPSIS\n    demo [-x]\n    demo -y\n\nOPTIONS\n    -x\n        Does x.\n\n        More about x.\n    -y file\n        Reads file.\n\nEXAMPLES\n    Run it:\n\n        demo -x\n",
        );
        assert!(page.contains(".SH \"NAME\"\ndemo \\- shows it\n"), "{page}");
        assert!(
            page.contains("\\fBdemo\\fR [\\-x]\n.br\n\\fBdemo\\fR \\-y\n"),
            "{page}"
        );
        assert!(
            page.contains(".TP\n\\fB\\-x\\fR\nDoes x.\n.IP\nMore about x.\n"),
            "{page}"
        );
        assert!(
            page.contains(".TP\n\\fB\\-y\\fR \\fIfile\\fR\nReads file.\n"),
            "{page}"
        );
        assert!(
            page.contains(".PP\nRun it:\n.PP\n.RS 4\n.nf\ndemo \\-x\n.fi\n"),
            "{page}"
        );
    }

    #[test]
    fn markdown_headings_lists_and_blocks() {
        let mut p = Page::new("x", "5", "File Formats");
        markdown(
            &mut p,
            "## The format\n\nText\nmore.\n\n* one\n  two\n* three\n\n1. first\n```text\nif x\n```\n",
        );
        let page = p.finish();
        assert!(
            page.contains(".SH \"THE FORMAT\"\n.PP\nText more.\n"),
            "{page}"
        );
        assert!(
            page.contains(".IP \\(bu 2\none two\n.IP \\(bu 2\nthree\n"),
            "{page}"
        );
        assert!(page.contains(".IP 1. 4\nfirst\n"), "{page}");
        assert!(page.contains(".nf\nif x\n.fi\n"), "{page}");
    }
}
