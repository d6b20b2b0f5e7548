//! Every file of `fuzz/corpus/TARGET/` (the seeds and what the fuzzer
//! kept) and `fuzz/regressions/TARGET/` (inputs that once broke
//! something) through the fuzz target's body, on the stable toolchain:
//! the short form of `make fuzz`.  A failure names the file.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        files.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, body) = mailroom::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "fuzz/corpus/{target}/ has no seed inputs"
    );
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).expect("read a corpus file");
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    let scratch = mailroom::fuzzing::scratch_dir();
    let _ = std::fs::remove_dir_all(scratch.join(target));
    let _ = std::fs::remove_dir(&scratch);
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail: {failed:#?}"
    );
}

macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name));
        }
    )*};
}

targets!(argv, header, aliases, tables, qf, mbox, pop3, smtp);

/// Every target has a test above (a new target must be added there).
#[test]
fn all_targets_replayed() {
    let names: Vec<&str> = mailroom::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "argv", "header", "aliases", "tables", "qf", "mbox", "pop3", "smtp"
        ]
    );
}
