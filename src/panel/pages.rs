//! The pages of the map in [`super`]: what each shows of the helper's
//! records and which forms it carries.  Pure functions of their data, so
//! each is tested with hostile values in every field.

use maud::{Markup, html};

use super::http::{query, segment};
use super::layout::{
    Ctx, Flash, age, check_box, domain_of, done_note, form, page, size, text_area, text_field,
    usage, value,
};
use super::protocol::{Record, Role};

/// The `seen` of a form that would make an object that does not exist
/// yet: the helper refuses it as `stale` if one was made meanwhile.
const NONE: &str = "none";

/// The records of one kind.
pub fn of_kind<'a>(data: &'a [Record], kind: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
    data.iter().filter(move |r| r.str("kind") == kind)
}

/// The record of `kind` whose `key` is `value`.
pub fn find<'a>(data: &'a [Record], kind: &str, key: &str, value: &str) -> Option<&'a Record> {
    data.iter()
        .find(|r| r.str("kind") == kind && r.str(key) == value)
}

fn number(r: &Record, key: &str) -> u64 {
    r.str(key).parse().unwrap_or(0)
}

fn targets(r: &Record, key: &str) -> String {
    r.all(key).collect::<Vec<_>>().join(", ")
}

/// A link to the confirmation of removal `op` with `fields`.
fn confirm_link(ctx: &Ctx, op: &str, fields: &[(&str, &str)]) -> String {
    ctx.link(&format!("confirm/{op}?{}", query(fields)))
}

/// Box admin (every domain) or a domain admin of several: the list.
pub fn domains(ctx: &Ctx, data: &[Record], flash: Option<&Flash>, done: Option<&str>) -> Markup {
    let admin = ctx.user.as_ref().is_some_and(|u| u.role == Role::Admin);
    let body = html! {
        (done_note(done))
        table {
            thead { tr { th { "Domain" } th { "Mailboxes" } @if admin { th { "" } } } }
            tbody {
                @for d in of_kind(data, "domain") {
                    tr {
                        td { a href=(ctx.domain_link(d.str("domain"))) { (d.str("domain")) } }
                        td.num { (d.str("mailboxes")) }
                        @if admin {
                            td { a.remove href=(confirm_link(ctx, "domain.remove", &[("domain", d.str("domain"))])) { "Remove" } }
                        }
                    }
                }
            }
        }
        @if admin {
            h2 { "Add a domain" }
            (form(ctx, "domain.add", flash, None, &[], html! {
                (text_field("domain.add", "domain", "Domain name", "text", &value(flash, "domain.add", "domain", "")))
                (check_box(flash, "domain.add", "virtual", "yes", "Virtual domain (its mailboxes are accounts of /etc/mail/passwd, not system users)", false))
            }, "Add domain"))
        }
    };
    page(ctx, "Domains", body)
}

/// What the domain page has selected for editing (`?alias=`, `?list=`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub alias: Option<String>,
    pub list: Option<String>,
}

/// One domain: its mailboxes with usage bars, aliases, forwards,
/// catch-all, autoresponders and lists, with the forms to add and change
/// them.
pub fn domain(
    ctx: &Ctx,
    domain: &str,
    data: &[Record],
    sel: &Selection,
    flash: Option<&Flash>,
    done: Option<&str>,
) -> Markup {
    let d = segment(domain);
    let mailboxes: Vec<&Record> = of_kind(data, "mailbox").collect();
    let alias = sel
        .alias
        .as_deref()
        .and_then(|a| find(data, "alias", "address", a));
    let catchall = of_kind(data, "catchall").next();
    let list = sel
        .list
        .as_deref()
        .and_then(|a| find(data, "list", "address", a));
    let body = html! {
        (done_note(done))
        p.links {
            a href=(ctx.link(&format!("d/{d}/queue"))) { "Queue" }
            " · "
            a href=(ctx.link(&format!("d/{d}/import"))) { "Import addresses" }
        }
        section #mailboxes {
            h2 { "Mailboxes (" (mailboxes.len()) ")" }
            table {
                thead { tr { th { "Address" } th { "Usage" } } }
                tbody {
                    @for m in &mailboxes {
                        tr {
                            td { a href=(ctx.mailbox_link(m.str("address"))) { (m.str("address")) } }
                            td { (usage(number(m, "used"), number(m, "quota"))) }
                        }
                    }
                }
            }
            h3 { "Add a mailbox" }
            (form(ctx, "mailbox.add", flash, None, &[], html! {
                (text_field("mailbox.add", "address", &format!("Address (name@{domain})"), "text", &value(flash, "mailbox.add", "address", "")))
                (text_field("mailbox.add", "password", "Password", "password", ""))
                (text_field("mailbox.add", "quota", "Quota (200M, 1G; empty: the default)", "text", &value(flash, "mailbox.add", "quota", "")))
                (check_box(flash, "mailbox.add", "virtual", "yes", "Virtual account (in /etc/mail/passwd, not a system user)", false))
            }, "Add mailbox"))
        }
        section #aliases {
            h2 { "Aliases" }
            table {
                thead { tr { th { "Address" } th { "Goes to" } th { "" } } }
                tbody {
                    @for a in of_kind(data, "alias") {
                        tr {
                            td { (a.str("address")) }
                            td { (targets(a, "target")) }
                            td {
                                a href={ (ctx.domain_link(domain)) "?" (query(&[("alias", a.str("address"))])) "#alias-set" } { "Edit" }
                                " "
                                a.remove href=(confirm_link(ctx, "alias.remove", &[("address", a.str("address"))])) { "Remove" }
                            }
                        }
                    }
                }
            }
            h3 { @if alias.is_some() { "Change an alias" } @else { "Add an alias" } }
            (form(ctx, "alias.set", flash, Some(alias.map_or(NONE, |a| a.str("stamp"))), &[], html! {
                (text_field("alias.set", "address", "Alias address", "text",
                    &value(flash, "alias.set", "address", alias.map_or("", |a| a.str("address")))))
                (text_field("alias.set", "target", "Goes to (addresses, separated by commas)", "text",
                    &value(flash, "alias.set", "target", &alias.map(|a| targets(a, "target")).unwrap_or_default())))
            }, "Save alias"))
        }
        section #forwards {
            h2 { "Forwards" }
            table {
                thead { tr { th { "Mailbox" } th { "Forwarded to" } th { "Copy kept" } } }
                tbody {
                    @for f in of_kind(data, "forward") {
                        tr {
                            td { a href=(ctx.mailbox_link(f.str("address"))) { (f.str("address")) } }
                            td { (targets(f, "target")) }
                            td { @if f.str("keep") == "yes" { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
        section #catchall {
            h2 { "Catch-all" }
            p {
                "Mail to an unknown address of " (domain) " goes to: "
                @if let Some(c) = catchall {
                    strong { (targets(c, "target")) }
                    " "
                    a.remove href=(confirm_link(ctx, "catchall.clear", &[("domain", domain)])) { "Remove" }
                } @else {
                    "nobody (it is refused)"
                }
            }
            (form(ctx, "catchall.set", flash, Some(catchall.map_or(NONE, |c| c.str("stamp"))), &[("domain", domain)], html! {
                (text_field("catchall.set", "target", "Catch-all goes to", "text",
                    &value(flash, "catchall.set", "target", &catchall.map(|c| targets(c, "target")).unwrap_or_default())))
            }, "Save catch-all"))
        }
        section #autoreplies {
            h2 { "Autoresponders" }
            table {
                thead { tr { th { "Mailbox" } th { "Subject" } th { "From" } th { "Until" } } }
                tbody {
                    @for a in of_kind(data, "autoreply") {
                        tr {
                            td { a href=(ctx.mailbox_link(a.str("address"))) { (a.str("address")) } }
                            td { (a.str("subject")) }
                            td { (a.str("from")) }
                            td { (a.str("until")) }
                        }
                    }
                }
            }
        }
        section #lists {
            h2 { "Lists" }
            table {
                thead { tr { th { "List" } th { "Members" } th { "Who may post" } th { "" } } }
                tbody {
                    @for l in of_kind(data, "list") {
                        tr {
                            td { (l.str("address")) }
                            td.num { (l.all("member").count()) }
                            td { @if l.str("posting") == "anyone" { "anyone" } @else { "members" } }
                            td {
                                a href={ (ctx.domain_link(domain)) "?" (query(&[("list", l.str("address"))])) "#list-add" } { "Members" }
                                " "
                                a.remove href=(confirm_link(ctx, "list.delete", &[("address", l.str("address"))])) { "Delete" }
                            }
                        }
                    }
                }
            }
            @if let Some(l) = list {
                h3 { "Members of " (l.str("address")) }
                ul.members {
                    @for m in l.all("member") {
                        li {
                            (m) " "
                            a.remove href=(confirm_link(ctx, "list.drop", &[("address", l.str("address")), ("member", m)])) { "Remove" }
                        }
                    }
                }
                (form(ctx, "list.add", flash, Some(l.str("stamp")), &[("address", l.str("address"))], html! {
                    (text_area("list.add", "member", "Add members (one address a line)", &value(flash, "list.add", "member", "")))
                }, "Add members"))
            }
            h3 { "Create a list" }
            (form(ctx, "list.create", flash, None, &[], html! {
                (text_field("list.create", "address", "List address", "text", &value(flash, "list.create", "address", "")))
                (text_area("list.create", "member", "Members (one address a line)", &value(flash, "list.create", "member", "")))
                (text_field("list.create", "owner", "Owner (optional; you if empty)", "text", &value(flash, "list.create", "owner", "")))
                (check_box(flash, "list.create", "posting", "anyone", "Anyone may post (otherwise members only)", false))
            }, "Create list"))
        }
    };
    page(ctx, domain, body)
}

/// The forms a mailbox's own settings take, on the admin's mailbox page
/// and on the user's `me` page (`me`: they post back to it).
fn own_forms(ctx: &Ctx, address: &str, data: &[Record], flash: Option<&Flash>, me: bool) -> Markup {
    let forward = find(data, "forward", "address", address);
    let auto = find(data, "autoreply", "address", address);
    let filter = find(data, "filter", "address", address);
    // `me` and `domain.show` carry the rules of every mailbox that has
    // any: none here means none.
    let filter_seen = Some(filter.map_or(NONE, |f| f.str("stamp")));
    let mut hidden = vec![("address", address)];
    if me {
        hidden.push(("page", "me"));
    }
    let clear = |op: &str| {
        let mut f = vec![("address", address)];
        if me {
            f.push(("page", "me"));
        }
        confirm_link(ctx, op, &f)
    };
    let v = |op: &str, field: &str, r: Option<&Record>| {
        value(flash, op, field, r.map_or("", |r| r.str(field)))
    };
    let keep = forward.is_none_or(|f| f.str("keep") == "yes");
    html! {
        section #forward {
            h2 { "Forward" }
            @if let Some(f) = forward {
                p { "Forwarded to " strong { (targets(f, "target")) }
                    @if f.str("keep") == "yes" { ", a copy is kept here." } @else { ", no copy is kept." }
                    " " a.remove href=(clear("forward.clear")) { "Stop forwarding" } }
            }
            (form(ctx, "forward.set", flash, Some(forward.map_or(NONE, |f| f.str("stamp"))), &hidden, html! {
                (text_field("forward.set", "target", "Forward to (addresses, separated by commas)", "text",
                    &value(flash, "forward.set", "target", &forward.map(|f| targets(f, "target")).unwrap_or_default())))
                (check_box(flash, "forward.set", "keep", "yes", "Keep a copy in this mailbox", keep))
            }, "Save forward"))
        }
        section #autoreply {
            h2 { "Autoreply (vacation)" }
            @if auto.is_some() {
                p { "An autoreply is set. " a.remove href=(clear("autoreply.clear")) { "Turn it off" } }
            }
            (form(ctx, "autoreply.set", flash, Some(auto.map_or(NONE, |a| a.str("stamp"))), &hidden, html! {
                (text_field("autoreply.set", "subject", "Subject", "text", &v("autoreply.set", "subject", auto)))
                (text_area("autoreply.set", "text", "Text", &v("autoreply.set", "text", auto)))
                (text_field("autoreply.set", "from", "From (date, optional)", "date", &v("autoreply.set", "from", auto)))
                (text_field("autoreply.set", "until", "Until (date, optional)", "date", &v("autoreply.set", "until", auto)))
                (text_field("autoreply.set", "interval", "Least time between two replies to one sender (empty: 7d)", "text", &v("autoreply.set", "interval", auto)))
            }, "Save autoreply"))
        }
        section #filter {
            h2 { "Filter rules" }
            @if filter.is_some() {
                p { a.remove href=(clear("filter.clear")) { "Remove all rules" } }
            }
            (form(ctx, "filter.set", flash, filter_seen, &hidden, html! {
                (text_area("filter.set", "rules", "Rules (mailroom-filter(5))", &v("filter.set", "rules", filter)))
            }, "Save rules"))
        }
    }
}

/// One mailbox, for an admin of its domain.
pub fn mailbox(
    ctx: &Ctx,
    mailbox: &Record,
    data: &[Record],
    flash: Option<&Flash>,
    done: Option<&str>,
) -> Markup {
    let address = mailbox.str("address");
    let quota = number(mailbox, "quota");
    let body = html! {
        (done_note(done))
        p.links {
            a href=(ctx.domain_link(domain_of(address))) { "Back to " (domain_of(address)) }
            " · "
            a.remove href=(confirm_link(ctx, "mailbox.remove", &[("address", address)])) { "Remove this mailbox" }
        }
        p.usage { "Usage: " (usage(number(mailbox, "used"), quota)) }
        section #password {
            h2 { "Password" }
            (form(ctx, "mailbox.password", flash, Some(mailbox.str("stamp")), &[("address", address)], html! {
                (text_field("mailbox.password", "password", "New password", "password", ""))
            }, "Set password"))
        }
        section #quota {
            h2 { "Quota" }
            (form(ctx, "mailbox.quota", flash, Some(mailbox.str("stamp")), &[("address", address)], html! {
                (text_field("mailbox.quota", "quota", "Quota (200M, 1G, unlimited, or none for the default)", "text",
                    &value(flash, "mailbox.quota", "quota", &if quota > 0 { size(quota) } else { String::new() })))
            }, "Set quota"))
        }
        (own_forms(ctx, address, data, flash, false))
    };
    page(ctx, address, body)
}

/// The user's own mailbox (`me`).
pub fn me(ctx: &Ctx, data: &[Record], flash: Option<&Flash>, done: Option<&str>) -> Markup {
    let me = of_kind(data, "me").next().cloned().unwrap_or_default();
    let address = me.str("address");
    let body = html! {
        (done_note(done))
        p.usage { (address) ": " (usage(number(&me, "used"), number(&me, "quota"))) }
        section #password {
            h2 { "Change your password" }
            (form(ctx, "password.change", flash, None, &[], html! {
                (text_field("password.change", "old", "Current password", "password", ""))
                (text_field("password.change", "new", "New password", "password", ""))
            }, "Change password"))
        }
        (spam_rule(&me))
        (own_forms(ctx, address, data, flash, true))
    };
    page(ctx, "My mailbox", body)
}

/// What the box's spam rule does with the user's mail (it runs before
/// their own rules), and how to be stricter.
fn spam_rule(me: &Record) -> Markup {
    let folder = me.str("spam_folder");
    let (at, over) = (me.str("spam_folder_at"), me.str("spam_discard_over"));
    html! {
        section #spam {
            h2 { "Spam" }
            @if at.is_empty() && over.is_empty() {
                p { "This server files no mail as spam by its score." }
            } @else {
                p {
                    @if !at.is_empty() {
                        "Mail the spam checker scores " (at) " or more goes to your folder "
                        strong { (folder) } " (read it with IMAP or webmail). "
                    }
                    @if !over.is_empty() {
                        "Mail scored over " (over) " is discarded."
                    }
                }
            }
            p.note {
                "To be stricter, add a rule below, for example "
                code { "if spam-score at-least 3 then folder " (folder) }
                "."
            }
        }
    }
}

/// The domain's queued messages with each one's last error.
pub fn queue(ctx: &Ctx, domain: &str, data: &[Record]) -> Markup {
    let queued: Vec<&Record> = of_kind(data, "queued").collect();
    let body = html! {
        p.links { a href=(ctx.domain_link(domain)) { "Back to " (domain) } }
        @if queued.is_empty() {
            p { "No messages of " (domain) " are waiting." }
        } @else {
            table.queue {
                thead { tr { th { "Id" } th { "From" } th { "To" } th { "Age" } th { "Size" } th { "Tries" } th { "Last error" } } }
                tbody {
                    @for q in &queued {
                        tr {
                            td { code { (q.str("id")) } }
                            td { (q.str("from")) }
                            td { (targets(q, "to")) }
                            td.num { (age(number(q, "age"))) }
                            td.num { (size(number(q, "size"))) }
                            td.num { (q.str("attempts")) }
                            td.error { (q.str("error")) }
                        }
                    }
                }
            }
        }
    };
    page(ctx, &format!("Queue of {domain}"), body)
}

/// The bulk import of a domain.
pub fn import(ctx: &Ctx, domain: &str, flash: Option<&Flash>, done: Option<&str>) -> Markup {
    let body = html! {
        (done_note(done))
        p.links { a href=(ctx.domain_link(domain)) { "Back to " (domain) } }
        p { "One record a line, every address of " (domain) "; all or nothing." }
        pre.example {
            "info@" (domain) "   s3cret\n"
            "alias sales@" (domain) " bob@" (domain) "\n"
            "forward ceo@" (domain) " ceo@mobile.example keep-copy\n"
            "quota intern@" (domain) " 200M"
        }
        (form(ctx, "import", flash, None, &[("domain", domain)], html! {
            (text_area("import", "text", "Records", &value(flash, "import", "text", "")))
            (check_box(flash, "import", "virtual", "yes", "New mailboxes are virtual accounts (not system users)", false))
        }, "Import"))
    };
    page(ctx, &format!("Import into {domain}"), body)
}

/// "Remove …?": the removal's form with its fields, and a way back.
pub fn confirm(
    ctx: &Ctx,
    op: &str,
    question: &str,
    fields: &[(String, String)],
    back: &str,
    flash: Option<&Flash>,
) -> Markup {
    let hidden: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "seen")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let seen = fields
        .iter()
        .find(|(k, _)| k == "seen")
        .map(|(_, v)| v.as_str());
    let body = html! {
        p.question { (question) }
        (form(ctx, op, flash, seen, &hidden, html! {}, "Remove"))
        p { a href=(back) { "Cancel" } }
    };
    page(ctx, "Please confirm", body)
}
