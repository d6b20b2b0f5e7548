//! The resolution table (tests/resolution/*.case): every address's
//! `sendmail -bv` verdict must be what real sendmail 8 answered
//! (tests/resolution/*.expected, recorded by compat/record_resolution.py;
//! compat/test_resolution_vs_sendmail8.py runs the same table through both
//! programs live).

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;

struct Case {
    sections: BTreeMap<String, String>,
    includes: BTreeMap<String, String>,
    users: Vec<String>,
    verify: Vec<String>,
}

fn parse_case(text: &str) -> Case {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut includes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('[') && line.ends_with(']') {
            let name = line[1..line.len() - 1].to_string();
            if let Some(inc) = name.strip_prefix("include ") {
                includes.entry(inc.to_string()).or_default();
            } else {
                sections.entry(name.clone()).or_default();
            }
            cur = Some(name);
            continue;
        }
        let Some(name) = &cur else { continue };
        if let Some(inc) = name.strip_prefix("include ") {
            includes.get_mut(inc).unwrap().push(line.to_string());
        } else {
            sections.get_mut(name).unwrap().push(line.to_string());
        }
    }
    let join = |v: &Vec<String>| v.join("\n").trim_matches('\n').to_string() + "\n";
    let verify = sections
        .get("verify")
        .map(|v| {
            v.iter()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let users = sections
        .get("users")
        .map(|v| {
            v.iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Case {
        sections: sections.iter().map(|(k, v)| (k.clone(), join(v))).collect(),
        includes: includes.iter().map(|(k, v)| (k.clone(), join(v))).collect(),
        users,
        verify,
    }
}

fn parse_expected(text: &str) -> BTreeMap<String, (Vec<String>, i32)> {
    let mut out = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut lines = Vec::new();
    for l in text.lines() {
        if let Some(a) = l.strip_prefix("### ") {
            cur = Some(a.to_string());
            lines = Vec::new();
        } else if let Some(code) = l.strip_prefix("exit=") {
            out.insert(
                cur.take().unwrap(),
                (std::mem::take(&mut lines), code.parse().unwrap()),
            );
        } else {
            lines.push(l.to_string());
        }
    }
    out
}

/// The case's tables and passwd file: (path under the root, text).
fn table_files(case: &Case) -> Vec<(String, String)> {
    let dir = LISTS;
    let mut out: Vec<(String, String)> = [
        "aliases",
        "virtusertable",
        "local-host-names",
        "virtuser-domains",
    ]
    .iter()
    .map(|key| {
        let text = case.sections.get(*key).cloned().unwrap_or_default();
        (format!("etc/mail/{key}"), text.replace("@DIR@", dir))
    })
    .collect();
    // The oracle's accounts: root, daemon, bin, mail, nobody, then the
    // case's users from uid 1000.
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nmail:x:8:8:mail:/var/mail:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    for (i, u) in case.users.iter().enumerate() {
        passwd.push_str(&format!(
            "{u}:x:{}:100:{u}:/nonexistent:/bin/sh\n",
            1000 + i
        ));
    }
    out.push(("etc/passwd".to_string(), passwd));
    out
}

/// A private root holding the case's files, with the oracle's settings:
/// host name oracle.test, no interface probing, no .forward files.  With
/// `tables` false the tables and the passwd file are left out (a staged
/// change supplies them).
fn root_for(case: &Case, name: &str, tables: bool) -> Root {
    let r = Root::new(name);
    let lists = r.path("etc/mail/lists");
    std::fs::create_dir_all(&lists).unwrap();
    // The files name paths as the system sees them; the root prefixes them.
    let dir = LISTS;
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = oracle.test\nlog = /var/log/mail.log\nprobe_interfaces = no\nforward_files = no\nmin_free_space = 0\n",
    );
    for (name, text) in &case.includes {
        std::fs::write(lists.join(name), text.replace("@DIR@", dir)).unwrap();
    }
    if tables {
        for (rel, text) in table_files(case) {
            r.write(&rel, &text);
        }
    }
    r
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Where the cases' include files are, as the tables name them.
const LISTS: &str = "/etc/mail/lists";

/// Every case's addresses, each answered by `verdict` (the case, the root,
/// the address: `-bv`'s lines, exit code and anything said on stderr),
/// against the recorded verdicts; `tables`: the root holds the tables
/// (else `verdict` brings them).
fn check_cases(tables: bool, verdict: impl Fn(&Case, &Root, &str) -> (Vec<String>, i32, String)) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resolution");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("case") {
            continue;
        }
        let case = parse_case(&std::fs::read_to_string(&path).unwrap());
        let expected =
            parse_expected(&std::fs::read_to_string(path.with_extension("expected")).unwrap());
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let r = root_for(&case, &stem, tables);
        for addr in &case.verify {
            let (want_lines, want_exit) = expected
                .get(addr)
                .unwrap_or_else(|| panic!("{stem}: no expected verdict for {addr}"));
            let (got, got_exit, said) = verdict(&case, &r, addr);
            let got: Vec<String> = got.iter().map(|l| l.replace(LISTS, "@DIR@")).collect();
            if sorted(got.clone()) != sorted(want_lines.clone()) || got_exit != *want_exit {
                failures.push(format!(
                    "{stem}: {addr}\n  sendmail 8 (exit {want_exit}):\n    {}\n  mailroom (exit {got_exit}):\n    {}\n  stderr: {}",
                    want_lines.join("\n    "),
                    got.join("\n    "),
                    said.trim()
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} addresses checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_address_resolves_as_sendmail_8_does() {
    check_cases(true, |_, r, addr| {
        let o = r
            .cmd("sendmail")
            .args(["-bv", "--", addr])
            .output()
            .unwrap();
        let lines = stdout(&o).lines().map(str::to_string).collect();
        (lines, code(&o), stderr(&o))
    });
}

/// The admin commands ask the resolver about the tables as a change they
/// are staging leaves them: the same table, fed as staged texts over a
/// root without them, gives the same answers.
#[test]
fn staged_tables_resolve_as_the_files_do() {
    use mailroom::config::{Config, Paths};
    use mailroom::resolve::Resolver;
    use mailroom::table::source::{Overlay, Source, Unstaged};
    check_cases(false, |case, r, addr| {
        assert!(!r.path("etc/mail/aliases").exists());
        let cfg = Config::load(Paths::under(&r.dir), None).unwrap();
        let mut staged = Overlay::new(&Unstaged);
        for (rel, text) in table_files(case) {
            staged.set(&r.path(&rel), text);
        }
        let resolver = Resolver::with_source(&cfg, &Source::Text(&staged));
        // As `sendmail -bv` reads its argument: a list of addresses.
        let list: Vec<String> = match mailroom::address::parse_list(addr) {
            Ok(l) if !l.is_empty() => l.into_iter().map(|m| m.display).collect(),
            _ => vec![addr.to_string()],
        };
        let mut lines = Vec::new();
        let mut exit = 0;
        for a in list {
            let (l, code) = resolver.resolve(&a).verify_lines(false);
            lines.extend(l);
            if code.code() != 0 {
                exit = code.code();
            }
        }
        (lines, exit, String::new())
    });
}
