//! Where a reader takes the configuration texts from: the tables, the
//! class files, `/etc/mail/passwd` and a private root's `/etc/passwd`.
//!
//! * [`Source::Disk`] — as delivery reads them: a table from its index
//!   when current ([`Table::open`]), users from the system's user database
//!   (or a private root's passwd file, [`crate::users::UserDb::for_root`]).
//! * [`Source::Text`] — every file's text as a change being staged leaves
//!   it: the staged content where the change has one, else the file on
//!   disk; tables parsed from that text ([`Table::from_text`], keyed as
//!   their index would be); `/etc/passwd`'s lines ahead of the system's
//!   user database.  What an admin command reads ([`crate::change`]): it
//!   sees what it has staged, and can name the file and line of every
//!   entry.
//!
//! Either way the same code answers the questions ([`crate::resolve`]).

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use super::{Syntax, Table};

/// Files staged for a change, not yet on disk.
pub trait Staging {
    /// What is staged for `path`: `Some(Some(text))` its new content,
    /// `Some(None)` its removal, `None` nothing (the disk has it).
    fn staged(&self, path: &Path) -> Option<Option<&[u8]>>;
}

/// Nothing staged: the texts on disk.
pub struct Unstaged;

impl Staging for Unstaged {
    fn staged(&self, _: &Path) -> Option<Option<&[u8]>> {
        None
    }
}

/// Texts staged over another staging: the files as they would be with
/// these texts too (a what-if, or a test's tables without files).
pub struct Overlay<'a> {
    base: &'a dyn Staging,
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn Staging) -> Overlay<'a> {
        Overlay {
            base,
            files: Vec::new(),
        }
    }

    /// Stage `text` as `path`'s content.
    pub fn set(&mut self, path: &Path, text: impl Into<Vec<u8>>) {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.to_path_buf(), Some(text.into())));
    }
}

impl Staging for Overlay<'_> {
    fn staged(&self, path: &Path) -> Option<Option<&[u8]>> {
        match self.files.iter().find(|(p, _)| p == path) {
            Some((_, content)) => Some(content.as_deref()),
            None => self.base.staged(path),
        }
    }
}

/// Where the texts come from (see the module text).
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Disk,
    Text(&'a dyn Staging),
}

impl Source<'_> {
    /// The texts on disk, read as an admin command reads them.
    pub fn text() -> Source<'static> {
        Source::Text(&Unstaged)
    }

    /// Is this [`Source::Text`]?
    pub fn is_text(&self) -> bool {
        matches!(self, Source::Text(_))
    }

    /// The content of `path`; `None` when it is missing (or the change
    /// removes it).
    pub fn read(&self, path: &Path) -> io::Result<Option<Cow<'_, [u8]>>> {
        if let Source::Text(s) = self
            && let Some(staged) = s.staged(path)
        {
            return Ok(staged.map(Cow::Borrowed));
        }
        match std::fs::read(path) {
            Ok(b) => Ok(Some(Cow::Owned(b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The text of `path`; empty when it is missing or cannot be read.
    pub fn read_lossy(&self, path: &Path) -> String {
        match self.read(path) {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }
    }

    /// The table whose text is `path`.  `may_rebuild`: from the disk, a
    /// stale index may be rebuilt ([`Table::open`]).
    pub fn table(&self, path: &Path, syntax: Syntax, may_rebuild: bool) -> Table {
        match self {
            Source::Disk => Table::open(path, syntax, may_rebuild),
            Source::Text(_) => match self.read(path) {
                Ok(Some(b)) => Table::from_text(path, syntax, &b),
                _ => Table::empty(path, syntax),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_texts_come_before_the_disk() {
        let dir = std::env::temp_dir().join(format!("mr-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let vut = dir.join("virtusertable");
        std::fs::write(&vut, "a@x.example disk\n").unwrap();
        let mut staged = Overlay::new(&Unstaged);
        let other = dir.join("aliases");
        staged.set(&other, "a: staged\n");
        let s = Source::Text(&staged);
        assert_eq!(s.read_lossy(&vut), "a@x.example disk\n");
        assert_eq!(s.read_lossy(&other), "a: staged\n");
        assert_eq!(
            s.table(&other, Syntax::Aliases, false)
                .get("a")
                .unwrap()
                .value,
            "staged"
        );
        assert!(
            Source::Disk
                .table(&other, Syntax::Aliases, false)
                .get("a")
                .is_none()
        );
        let mut over = Overlay::new(&staged);
        over.set(&vut, "a@x.example over\n");
        let s = Source::Text(&over);
        assert_eq!(
            s.table(&vut, Syntax::Makemap, false)
                .get("a@x.example")
                .unwrap()
                .value,
            "over"
        );
        assert_eq!(s.read_lossy(&other), "a: staged\n");
        assert!(Source::Disk.read(&dir.join("none")).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
