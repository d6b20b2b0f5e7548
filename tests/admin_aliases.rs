//! `mailroom domain`, `alias`, `forward`, `catchall` and `check` against
//! private roots: what each command does to the files (hand-written
//! comments and order kept), the refusals (a taken address names the file
//! and line that owns it), `mailroom explain` agreeing afterwards, and
//! concurrent commands all landing.

mod common;
use common::*;

use std::fs;

/// A root with users root, nobody, bob and carol, a local domain
/// example.com and a virtual domain shop.example, and hand-written files
/// with comments.
fn site(name: &str) -> Root {
    let r = Root::new(name);
    r.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
         bob:x:1000:1000:Bob:/home/bob:/bin/sh\n\
         carol:x:1001:1000:Carol:/home/carol:/bin/sh\n",
    );
    r.write(
        "etc/mail/local-host-names",
        "# the domains we are\nexample.com\n",
    );
    r.write("etc/mail/virtuser-domains", "# hosted\nshop.example\n");
    r.write(
        "etc/mail/aliases",
        "# Written by hand.\npostmaster: root\n\n# the team\nteam: bob,\n\tcarol\n",
    );
    r.write(
        "etc/mail/virtusertable",
        "# by hand\nold@shop.example\tbob\n\n# keep me\n",
    );
    r
}

fn explain(r: &Root, addr: &str) -> (i32, String) {
    let o = r.mailroom(&["explain", addr]);
    (code(&o), stdout(&o))
}

/// The result lines of `mailroom explain` (after "result:").
fn results(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| *l != "result:")
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn domains_are_added_listed_and_removed_in_place() {
    let r = site("domains");
    r.mailroom_ok(&["domain", "add", "New.Example"]);
    r.mailroom_ok(&["domain", "add", "virt.example", "--virtual"]);
    assert_eq!(
        r.read("etc/mail/local-host-names"),
        "# the domains we are\nexample.com\nnew.example\n"
    );
    assert_eq!(
        r.read("etc/mail/virtuser-domains"),
        "# hosted\nshop.example\nvirt.example\n"
    );
    // The same again changes nothing; the other kind is refused.
    let again = r.mailroom_ok(&["domain", "add", "new.example"]);
    assert!(again.contains("nothing to do"), "{again}");
    let o = r.mailroom(&["domain", "add", "example.com", "--virtual"]);
    assert_eq!(code(&o), 65);
    assert!(stderr(&o).contains("local-host-names:2"), "{}", stderr(&o));
    let o = r.mailroom(&["domain", "add", "not a domain"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));

    let list = r.mailroom_ok(&["domain", "list"]);
    assert!(list.contains("test.example"), "{list}");
    assert!(list.contains("local-host-names:3"), "{list}");
    let json = r.mailroom_ok(&["domain", "list", "--json"]);
    assert!(
        json.contains("{\"domain\": \"virt.example\", \"kind\": \"virtual\""),
        "{json}"
    );
    assert!(json.contains("\"domain\": \"shop.example\""), "{json}");

    // shop.example has an address: refused, named; --force removes it.
    let o = r.mailroom(&["domain", "remove", "shop.example"]);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("virtusertable:2: old@shop.example bob"),
        "{}",
        stderr(&o)
    );
    r.mailroom_ok(&["domain", "remove", "shop.example", "--force"]);
    assert_eq!(
        r.read("etc/mail/virtuser-domains"),
        "# hosted\nvirt.example\n"
    );
    r.mailroom_ok(&["domain", "remove", "new.example"]);
    assert_eq!(
        r.read("etc/mail/local-host-names"),
        "# the domains we are\nexample.com\n"
    );
    let o = r.mailroom(&["domain", "remove", "never.example"]);
    assert_eq!(code(&o), 67);
}

#[test]
fn aliases_land_in_the_files_and_explain_agrees() {
    let r = site("aliases");
    // One target: a virtusertable line, appended after the comments.
    r.mailroom_ok(&["alias", "add", "Info@Shop.Example", "bob"]);
    // Several: an aliases entry named after the address.
    let out = r.mailroom_ok(&[
        "alias",
        "add",
        "sales@shop.example",
        "bob",
        "carol@example.com",
        "far@remote.example",
    ]);
    assert!(out.contains("sales-shop"), "{out}");
    // A bare name: aliases only.
    r.mailroom_ok(&["alias", "add", "webmaster", "team"]);
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        "# by hand\nold@shop.example\tbob\n\n# keep me\ninfo@shop.example\tbob\nsales@shop.example\tsales-shop\n"
    );
    assert_eq!(
        r.read("etc/mail/aliases"),
        "# Written by hand.\npostmaster: root\n\n# the team\nteam: bob,\n\tcarol\n\
         sales-shop: bob, carol@example.com, far@remote.example\nwebmaster: team\n"
    );
    // The compiled indexes were rebuilt with the text.
    assert!(r.path("etc/mail/virtusertable.mrdb").exists());
    assert!(r.path("etc/mail/aliases.mrdb").exists());

    let (c, text) = explain(&r, "info@shop.example");
    assert_eq!(c, 0, "{text}");
    assert!(text.contains("virtusertable:5"), "{text}");
    let res = results(&text);
    assert_eq!(res.len(), 1, "{text}");
    assert!(res[0].contains("var/mail/bob (user bob)"), "{text}");

    let (c, text) = explain(&r, "sales@shop.example");
    assert_eq!(c, 0, "{text}");
    assert!(text.contains("aliases:7"), "{text}");
    let res = results(&text).join("\n");
    assert!(res.contains("var/mail/bob (user bob)"), "{text}");
    assert!(res.contains("var/mail/carol (user carol)"), "{text}");
    assert!(res.contains("far@remote.example remote"), "{text}");

    let (c, text) = explain(&r, "webmaster@example.com");
    assert_eq!(c, 0, "{text}");
    assert_eq!(results(&text).len(), 2, "{text}");

    let list = r.mailroom_ok(&["alias", "list"]);
    assert!(list.contains("sales@shop.example"), "{list}");
    assert!(list.contains("via sales-shop"), "{list}");
    let json = r.mailroom_ok(&["alias", "list", "--json", "shop.example"]);
    assert!(
        json.contains("\"address\": \"sales@shop.example\", \"targets\": [\"bob\", \"carol@example.com\", \"far@remote.example\"], \"via\": \"sales-shop\""),
        "{json}"
    );
    assert!(!json.contains("webmaster"), "{json}");

    // Removing takes the generated aliases entry along; hand-made lines stay.
    r.mailroom_ok(&["alias", "remove", "sales@shop.example"]);
    r.mailroom_ok(&["alias", "remove", "info@shop.example"]);
    r.mailroom_ok(&["alias", "remove", "webmaster"]);
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        "# by hand\nold@shop.example\tbob\n\n# keep me\n"
    );
    assert_eq!(
        r.read("etc/mail/aliases"),
        "# Written by hand.\npostmaster: root\n\n# the team\nteam: bob,\n\tcarol\n"
    );
    // A virtual domain's unknown address is relayed to the domain, as
    // sendmail does: nothing is delivered here.
    let (_, text) = explain(&r, "sales@shop.example");
    assert!(!text.contains("var/mail/"), "{text}");
    assert!(text.contains("no virtusertable entry"), "{text}");
    let o = r.mailroom(&["alias", "remove", "sales@shop.example"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
}

#[test]
fn a_taken_address_is_refused_naming_its_owner() {
    let r = site("taken");
    let o = r.mailroom(&["alias", "add", "old@shop.example", "carol"]);
    assert_eq!(code(&o), 65);
    let e = stderr(&o);
    assert!(
        e.starts_with("mailroom: old@shop.example is already taken: "),
        "{e}"
    );
    assert!(
        e.contains("etc/mail/virtusertable:2: old@shop.example bob"),
        "{e}"
    );
    // A system user owns its name, and its address in a local domain.
    let o = r.mailroom(&["alias", "add", "bob", "carol"]);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("etc/passwd:3: system user bob"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("mailroom forward set bob"),
        "{}",
        stderr(&o)
    );
    let o = r.mailroom(&["alias", "add", "postmaster@example.com", "carol"]);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("aliases:2: postmaster: root"),
        "{}",
        stderr(&o)
    );
    let o = r.mailroom(&["alias", "add", "team", "carol"]);
    assert!(
        stderr(&o).contains("aliases:5: team: bob, carol"),
        "{}",
        stderr(&o)
    );
    // In a virtual domain bob@ is free.
    r.mailroom_ok(&["alias", "add", "bob@shop.example", "carol"]);
    // Nothing was written by the refusals.
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        "# by hand\nold@shop.example\tbob\n\n# keep me\nbob@shop.example\tcarol\n"
    );
}

/// Quoted names mean to the admin commands what they mean to newaliases
/// and delivery: a hand-written "Sales.Team" owns sales.team; "john smith"
/// can be made, found by explain, named as a target, listed and removed;
/// with a domain it cannot (no virtusertable key holds a space).
#[test]
fn quoted_alias_names_are_the_names_delivery_sees() {
    let r = site("quoted");
    let aliases = r.read("etc/mail/aliases") + "\"Sales.Team\": bob\n";
    r.write("etc/mail/aliases", &aliases);
    for addr in ["sales.team", "Sales.Team@example.com", "\"sales.team\""] {
        let o = r.mailroom(&["alias", "add", addr, "carol"]);
        assert_eq!(code(&o), 65, "{addr}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("aliases:7: sales.team: bob"),
            "{addr}: {}",
            stderr(&o)
        );
    }
    let (c, text) = explain(&r, "\"Sales.Team\"@example.com");
    assert_eq!(c, 0, "{text}");
    assert!(text.contains("(quotes removed)"), "{text}");
    assert!(text.contains("aliases:7"), "{text}");
    assert!(
        results(&text)[0].contains("var/mail/bob (user bob)"),
        "{text}"
    );

    r.mailroom_ok(&["alias", "add", "\"John Smith\"", "carol"]);
    assert!(
        r.read("etc/mail/aliases")
            .ends_with("\"Sales.Team\": bob\n\"john smith\": carol\n"),
        "{}",
        r.read("etc/mail/aliases")
    );
    let (c, text) = explain(&r, "\"JOHN SMITH\"@example.com");
    assert_eq!(c, 0, "{text}");
    assert!(text.contains("aliases:8"), "{text}");
    assert!(
        results(&text)[0].contains("var/mail/carol (user carol)"),
        "{text}"
    );
    // The spacing is part of the name.
    let (c, text) = explain(&r, "\"john  smith\"@example.com");
    assert_ne!(c, 0, "{text}");
    let o = r.mailroom(&["alias", "add", "\"john smith\"", "bob"]);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    let list = r.mailroom_ok(&["alias", "list"]);
    assert!(list.contains("\"john smith\""), "{list}");
    // A target may name it; then it is in use.
    r.mailroom_ok(&["alias", "add", "js@shop.example", "\"John Smith\""]);
    assert!(
        r.read("etc/mail/virtusertable")
            .contains("js@shop.example\t\"john smith\"\n"),
        "{}",
        r.read("etc/mail/virtusertable")
    );
    let (c, text) = explain(&r, "js@shop.example");
    assert_eq!(c, 0, "{text}");
    assert!(
        results(&text)[0].contains("var/mail/carol (user carol)"),
        "{text}"
    );
    let o = r.mailroom(&["alias", "remove", "\"john smith\""]);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(stderr(&o).contains("still used"), "{}", stderr(&o));
    r.mailroom_ok(&["alias", "remove", "js@shop.example"]);
    r.mailroom_ok(&["alias", "remove", "\"John Smith\""]);
    assert!(
        r.read("etc/mail/aliases")
            .ends_with("\"Sales.Team\": bob\n")
    );

    // With a domain the name would be a virtusertable key: refused, with
    // the way that works.
    let o = r.mailroom(&["alias", "add", "\"john smith\"@example.com", "carol"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mailroom alias add \"john smith\" TARGET"),
        "{}",
        stderr(&o)
    );
    // Quotes around an address, escapes, or odd spacing are no names.
    for bad in ["\"a@b\"", "\"x\\\"y\"", "\"two  spaces\"", "\" lead\""] {
        let o = r.mailroom(&["alias", "add", bad, "carol"]);
        assert_eq!(code(&o), 64, "{bad}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("double quotes"),
            "{bad}: {}",
            stderr(&o)
        );
    }
}

/// The admin commands read the aliases file with the reader newaliases and
/// delivery use: a backslash continues an entry onto the next line, and
/// every definition of a name counts (sendmail uses the last).
#[test]
fn the_admin_reads_aliases_as_newaliases_does() {
    let r = site("one-reader");
    let before = r.read("etc/mail/aliases");
    r.write(
        "etc/mail/aliases",
        &format!("{before}long: bob, \\\ncarol\ndup: bob\ndup: carol\n"),
    );
    let o = r.sendmail(&["-bi"], b"");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // "carol" on its own line is part of long.
    r.mailroom_ok(&["alias", "remove", "long"]);
    assert_eq!(
        r.read("etc/mail/aliases"),
        format!("{before}dup: bob\ndup: carol\n")
    );
    let o = r.sendmail(&["-bi"], b"");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // Both definitions go: the first would take over from the last.
    r.mailroom_ok(&["alias", "remove", "dup"]);
    assert_eq!(r.read("etc/mail/aliases"), before);
    let (c, text) = explain(&r, "dup@example.com");
    assert_ne!(c, 0, "{text}");
}

#[test]
fn targets_and_addresses_are_validated() {
    let r = site("validate");
    let before = (r.read("etc/mail/aliases"), r.read("etc/mail/virtusertable"));
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["alias", "add", "x@shop.example", "nosuch"],
            67,
            "not a user, alias",
        ),
        (
            &["alias", "add", "x@shop.example", "nobody@shop.example"],
            67,
            "mailroom mailbox add nobody@shop.example",
        ),
        (
            &["alias", "add", "x@elsewhere.example", "bob"],
            67,
            "mailroom domain add elsewhere.example",
        ),
        (
            &["alias", "add", "x y@shop.example", "bob"],
            64,
            "not an address",
        ),
        (
            &["alias", "add", "@shop.example", "bob"],
            64,
            "mailroom catchall set shop.example",
        ),
        (
            &["alias", "add", "x@shop.example", "x@shop.example"],
            65,
            "itself",
        ),
        (
            &["alias", "add", "x@shop.example", "error:nouser gone"],
            64,
            "by hand",
        ),
        (
            &["alias", "add", "x@shop.example", "old"],
            67,
            "did you mean old@shop.example",
        ),
    ];
    for (args, want, text) in cases {
        let o = r.mailroom(args);
        assert_eq!(code(&o), *want, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(text), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        (r.read("etc/mail/aliases"), r.read("etc/mail/virtusertable")),
        before
    );
    // A program target goes through aliases, quoted.
    r.mailroom_ok(&["alias", "add", "robot@shop.example", "|/usr/bin/robot --in"]);
    assert!(
        r.read("etc/mail/aliases")
            .ends_with("robot-shop: \"|/usr/bin/robot --in\"\n"),
        "{}",
        r.read("etc/mail/aliases")
    );
}

#[test]
fn forwards_with_and_without_a_copy() {
    let r = site("forward");
    r.mailroom_ok(&["alias", "add", "ceo@shop.example", "carol"]);
    let out = r.mailroom_ok(&[
        "forward",
        "set",
        "carol",
        "carol.phone@mobile.example",
        "--keep-copy",
    ]);
    assert!(out.contains("keeping a copy"), "{out}");
    assert!(
        r.read("etc/mail/aliases")
            .ends_with("carol: carol.phone@mobile.example, \\carol\n"),
        "{}",
        r.read("etc/mail/aliases")
    );
    let (c, text) = explain(&r, "ceo@shop.example");
    assert_eq!(c, 0, "{text}");
    let res = results(&text).join("\n");
    assert!(res.contains("carol.phone@mobile.example remote"), "{text}");
    assert!(res.contains("var/mail/carol (user carol)"), "{text}");

    // Set again without the copy: replaced in place.
    r.mailroom_ok(&[
        "forward",
        "set",
        "carol@example.com",
        "carol@elsewhere.example",
    ]);
    let aliases = r.read("etc/mail/aliases");
    assert_eq!(aliases.matches("carol:").count(), 1, "{aliases}");
    assert!(
        aliases.ends_with("carol: carol@elsewhere.example\n"),
        "{aliases}"
    );
    let (_, text) = explain(&r, "carol");
    assert_eq!(results(&text).len(), 1, "{text}");

    // Forwarding to itself is refused with the way to keep a copy.
    let o = r.mailroom(&["forward", "set", "bob", "bob"]);
    assert_eq!(code(&o), 65, "{}", stderr(&o));
    assert!(stderr(&o).contains("--keep-copy"), "{}", stderr(&o));
    // Not a mailbox.
    let o = r.mailroom(&["forward", "set", "team", "bob"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));

    r.mailroom_ok(&["forward", "clear", "carol"]);
    assert!(!r.read("etc/mail/aliases").contains("carol:"));
    let o = r.mailroom(&["forward", "clear", "carol"]);
    assert_eq!(code(&o), 67);
    let (_, text) = explain(&r, "ceo@shop.example");
    assert_eq!(results(&text).len(), 1, "{text}");
}

#[test]
fn a_catch_all_takes_only_unknown_addresses() {
    let r = site("catchall");
    r.mailroom_ok(&["alias", "add", "orders@shop.example", "carol"]);
    r.mailroom_ok(&["catchall", "set", "shop.example", "orders@shop.example"]);
    assert!(
        r.read("etc/mail/virtusertable")
            .ends_with("@shop.example\torders@shop.example\n")
    );
    let (c, text) = explain(&r, "anything@shop.example");
    assert_eq!(c, 0, "{text}");
    assert!(results(&text)[0].contains("var/mail/carol"), "{text}");
    let (_, text) = explain(&r, "old@shop.example");
    assert!(results(&text)[0].contains("var/mail/bob"), "{text}");
    // A catch-all cannot lead to itself.
    let o = r.mailroom(&["catchall", "set", "shop.example", "nobody-yet@shop.example"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    // Several targets: a generated aliases entry, removed again on clear.
    r.mailroom_ok(&["catchall", "set", "shop.example", "bob", "carol"]);
    assert!(
        r.read("etc/mail/aliases")
            .ends_with("catchall-shop: bob, carol\n")
    );
    let check = r.mailroom(&["check"]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    assert!(
        stdout(&check).contains("warning: catch-all on for shop.example"),
        "{}",
        stdout(&check)
    );
    r.mailroom_ok(&["catchall", "clear", "shop.example"]);
    assert!(!r.read("etc/mail/aliases").contains("catchall-shop"));
    // A virtual domain: the catch-all's line now refuses unknown addresses
    // (without it they would be relayed to the domain's MX).
    assert!(
        r.read("etc/mail/virtusertable")
            .ends_with("\n@shop.example\terror:5.1.1:550 User unknown\n")
    );
    let (c, text) = explain(&r, "anything@shop.example");
    assert!(!text.contains("var/mail/"), "{text}");
    assert_eq!(c, 67, "{text}");
    assert!(
        results(&text)[0].contains("550 5.1.1 User unknown"),
        "{text}"
    );
    // Cleared again: nothing to do.
    let again = r.mailroom_ok(&["catchall", "clear", "shop.example"]);
    assert!(again.contains("nothing to do"), "{again}");
    // A local domain without a catch-all has none to clear.
    let o = r.mailroom(&["catchall", "clear", "example.com"]);
    assert_eq!(code(&o), 67);
}

#[test]
fn a_virtual_domain_refuses_unknown_addresses() {
    let r = site("refusal");
    const LINE: &str = "@virt.example\terror:5.1.1:550 User unknown\n";
    let out = r.mailroom_ok(&["domain", "add", "virt.example", "--virtual"]);
    assert!(out.contains("unknown addresses are refused"), "{out}");
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        format!("# by hand\nold@shop.example\tbob\n\n# keep me\n{LINE}")
    );
    // Unknown addresses: 550 5.1.1, not relayed to virt.example's MX.
    let (c, text) = explain(&r, "no.such.person@virt.example");
    assert_eq!(c, 67, "{text}");
    assert_eq!(
        results(&text),
        ["no.such.person@virt.example 550 5.1.1 User unknown (refused)"],
        "{text}"
    );
    // It is no catch-all and no address of the domain.
    let list = r.mailroom_ok(&["domain", "list", "--json"]);
    assert!(
        list.contains("\"domain\": \"virt.example\", \"kind\": \"virtual\", \"file\": "),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("virt.example")
                && l.contains("\"addresses\": 0, \"catch_all\": null")),
        "{list}"
    );
    let aliases = r.mailroom_ok(&["alias", "list", "virt.example"]);
    assert_eq!(aliases, "no aliases, forwards or catch-alls\n");
    let check = r.mailroom(&["check"]);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    assert!(
        stdout(&check).ends_with("0 errors, 0 warnings\n"),
        "{}",
        stdout(&check)
    );
    // Its addresses still work, and a target there must exist.
    r.mailroom_ok(&["alias", "add", "info@virt.example", "bob"]);
    let (c, text) = explain(&r, "info@virt.example");
    assert_eq!(c, 0, "{text}");
    assert!(results(&text)[0].contains("var/mail/bob"), "{text}");
    let o = r.mailroom(&["alias", "add", "x@shop.example", "nobody@virt.example"]);
    assert_eq!(code(&o), 67, "{}", stderr(&o));
    // Adding it again changes nothing; so does a local domain.
    r.mailroom_ok(&["domain", "add", "virt.example", "--virtual"]);
    r.mailroom_ok(&["domain", "add", "loc.example"]);
    assert_eq!(
        r.read("etc/mail/virtusertable").matches("error:").count(),
        1
    );

    // A catch-all replaces the line in place; clearing it puts it back.
    r.mailroom_ok(&["catchall", "set", "virt.example", "carol"]);
    let vut = r.read("etc/mail/virtusertable");
    assert!(vut.contains("# keep me\n@virt.example\tcarol\n"), "{vut}");
    assert!(!vut.contains("error:"), "{vut}");
    let (c, text) = explain(&r, "no.such.person@virt.example");
    assert_eq!(c, 0, "{text}");
    assert!(results(&text)[0].contains("var/mail/carol"), "{text}");
    r.mailroom_ok(&["catchall", "clear", "virt.example"]);
    let vut = r.read("etc/mail/virtusertable");
    assert!(vut.contains(&format!("# keep me\n{LINE}")), "{vut}");

    // Removing the domain: the line is no address of it (its alias is),
    // and goes with it.
    let o = r.mailroom(&["domain", "remove", "virt.example"]);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("still has 1 address "),
        "{}",
        stderr(&o)
    );
    r.mailroom_ok(&["alias", "remove", "info@virt.example"]);
    r.mailroom_ok(&["domain", "remove", "virt.example"]);
    assert_eq!(
        r.read("etc/mail/virtusertable"),
        "# by hand\nold@shop.example\tbob\n\n# keep me\n"
    );
    assert_eq!(
        r.read("etc/mail/virtuser-domains"),
        "# hosted\nshop.example\n"
    );

    // A virtual domain made before the line was written (shop.example, by
    // hand) gets it from 'domain add' again.
    let out = r.mailroom_ok(&["domain", "add", "shop.example", "--virtual"]);
    assert!(out.contains("unknown addresses are refused"), "{out}");
    assert!(
        r.read("etc/mail/virtusertable")
            .ends_with("# keep me\n@shop.example\terror:5.1.1:550 User unknown\n")
    );
}

#[test]
fn concurrent_alias_adds_all_land() {
    let r = site("concurrent");
    let mut children = Vec::new();
    for i in 0..20 {
        for side in ["a", "b"] {
            let addr = format!("{side}{i}@shop.example");
            let target = if side == "a" { "bob" } else { "carol" };
            children.push((
                addr.clone(),
                r.cmd("mailroom")
                    .args(["alias", "add", &addr, target])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            ));
        }
    }
    for (addr, c) in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{addr}: {}", stderr(&o));
    }
    let vut = r.read("etc/mail/virtusertable");
    assert!(
        vut.starts_with("# by hand\nold@shop.example\tbob\n\n# keep me\n"),
        "{vut}"
    );
    for i in 0..20 {
        assert!(
            vut.contains(&format!("\na{i}@shop.example\tbob\n")),
            "a{i}: {vut}"
        );
        assert!(
            vut.contains(&format!("\nb{i}@shop.example\tcarol\n")),
            "b{i}: {vut}"
        );
    }
    assert_eq!(vut.lines().count(), 4 + 40, "{vut}");
    let (c, text) = explain(&r, "b17@shop.example");
    assert_eq!(c, 0, "{text}");
    assert!(results(&text)[0].contains("var/mail/carol"), "{text}");
}

#[test]
fn check_reports_file_and_line_and_warns() {
    let r = site("check");
    let o = r.mailroom(&["check"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("0 errors, 0 warnings\n"),
        "{}",
        stdout(&o)
    );

    // Warnings alone still exit 0.
    r.write(
        "etc/mail/access",
        "# relays\nConnect:127.0.0.1 RELAY\nConnect:10 RELAY\nConnect:192.168.1 RELAY\n",
    );
    fs::write(
        r.path("etc/mail/aliases"),
        r.read("etc/mail/aliases") + "vacation: \"|/usr/bin/vacation bob\"\n",
    )
    .unwrap();
    let o = r.mailroom(&["check"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("access:3: warning: Connect:10 RELAY"), "{out}");
    assert!(!out.contains("access:2:"), "{out}");
    assert!(!out.contains("access:4:"), "{out}");
    assert!(
        out.contains("aliases:7: warning: vacation: pipes mail to a program"),
        "{out}"
    );

    // Errors: exit 78, each with its file and line.
    r.write(
        "etc/mail/mailertable",
        "x.example esmtp:[mx.x.example]\nbad.example foo:bar\n",
    );
    r.write("etc/mail/quotas", "bob 10Q\n");
    fs::write(
        r.path("etc/mail/virtusertable"),
        r.read("etc/mail/virtusertable")
            + "dup@shop.example bob\ndup@shop.example carol\nlonely@shop.example\n",
    )
    .unwrap();
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nlog = /var/log/mail.log\nmin_free_space = 0\ntypo_key = 1\n",
    );
    fs::set_permissions(
        r.path("etc/mail/virtuser-domains"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let o = r.mailroom(&["check"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 78, "{out}");
    for want in [
        "mailertable:2: error: bad.example: unknown mailer",
        "quotas:1: error: bob: \"10Q\" is not a size",
        "virtusertable:6: error: key dup@shop.example: duplicate key",
        "virtusertable:7: error: key lonely@shop.example: missing value",
        "mailroom.conf:4: warning: unknown key \"typo_key\"",
        "virtuser-domains: warning: world-writable",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let json = stdout(&r.mailroom(&["check", "--json"]));
    assert!(json.contains("\"level\": \"error\""), "{json}");

    // A configuration that does not load is reported too.
    r.write(
        "etc/mail/mailroom.conf",
        "hostname = test.example\nmessage_size_limit = lots\n",
    );
    let o = r.mailroom(&["check"]);
    assert_eq!(code(&o), 78);
    assert!(
        stdout(&o).contains("mailroom.conf:2: bad value"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn help_teaches_with_examples() {
    let r = site("help");
    for args in [
        &["alias", "add", "--help"][..],
        &["forward", "set", "--help"],
        &["catchall", "set", "--help"],
        &["domain", "add", "--help"],
        &["check", "--help"],
    ] {
        let o = r.mailroom(args);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("Example"), "{args:?}: {}", stdout(&o));
    }
    let o = r.mailroom(&["--help"]);
    // The hidden build command is not listed (`dkim` names its own
    // `generate` in its description).
    assert!(
        !stdout(&o)
            .lines()
            .any(|l| l.trim_start().starts_with("generate")),
        "{}",
        stdout(&o)
    );
}
