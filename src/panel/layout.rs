//! The pieces every page is made of: the page shell (head, header with
//! who is logged in, logout), forms (their id, action, CSRF token and
//! `seen` stamp, the message of a refused change), and the error pages.
//!
//! Every value is spliced with maud's `( )`, which escapes it; nothing
//! here or in [`super::pages`] uses `PreEscaped`.

use maud::{DOCTYPE, Markup, html};

use super::http::segment;
use super::protocol::Role;

/// What every page knows: where the panel is, and who is logged in.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub base: String,
    pub user: Option<User>,
}

/// The logged-in session, as `whoami` answered.
#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
    pub csrf: String,
    pub login: String,
    pub role: Role,
    pub domains: Vec<String>,
}

impl Ctx {
    /// A link to `route` (already encoded) below the base.
    pub fn link(&self, route: &str) -> String {
        format!("{}/{route}", self.base)
    }

    pub fn domain_link(&self, domain: &str) -> String {
        self.link(&format!("d/{}", segment(domain)))
    }

    pub fn mailbox_link(&self, address: &str) -> String {
        let domain = domain_of(address);
        self.link(&format!("d/{}/m/{}", segment(domain), segment(address)))
    }

    fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.csrf.as_str())
    }
}

/// The domain of an address (after its last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// A change that was refused, shown at its form with what was typed.
#[derive(Debug, Clone, Default)]
pub struct Flash {
    /// The operation whose form it belongs to.
    pub op: String,
    pub message: String,
    /// The fields as posted (passwords are never shown again).
    pub values: Vec<(String, String)>,
    /// The object had changed since the page showed it (`stale`), rather
    /// than the change being refused (`failed`).
    pub stale: bool,
}

impl Flash {
    /// What the user typed into `field` of form `op`, if this is its flash.
    pub fn value(&self, op: &str, field: &str) -> Option<&str> {
        if self.op != op || matches!(field, "password" | "old" | "new") {
            return None;
        }
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// The value a field of form `op` shows: what was typed (after a refused
/// change), else `current`.
pub fn value(flash: Option<&Flash>, op: &str, field: &str, current: &str) -> String {
    flash
        .and_then(|f| f.value(op, field))
        .unwrap_or(current)
        .to_string()
}

/// The whole page.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · mail panel" }
                link rel="stylesheet" href=(ctx.link("style.css"));
            }
            body {
                header {
                    a.brand href=(ctx.link("home")) { "Mail panel" }
                    @if let Some(u) = &ctx.user {
                        nav {
                            @if u.role == Role::Admin {
                                a href=(ctx.link("domains")) { "Domains" }
                            }
                            @if u.role == Role::DomainAdmin {
                                @for d in &u.domains {
                                    a href=(ctx.domain_link(d)) { (d) }
                                }
                            }
                            a href=(ctx.link("me")) { "My mailbox" }
                        }
                        form #logout method="post" action=(ctx.link("logout")) {
                            span.who { (u.login) " (" (role_name(u.role)) ")" }
                            input type="hidden" name="csrf" value=(u.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "box admin",
        Role::DomainAdmin => "domain admin",
        Role::User => "mailbox user",
    }
}

/// A form posting operation `op`: `form#OP` (dots made dashes), the
/// session's CSRF token, the record's stamp as `seen` when it edits one
/// that exists, `hidden` fields, then `fields` and a submit button.  A
/// refused change of this form shows its message first.
pub fn form(
    ctx: &Ctx,
    op: &str,
    flash: Option<&Flash>,
    seen: Option<&str>,
    hidden: &[(&str, &str)],
    fields: Markup,
    submit: &str,
) -> Markup {
    html! {
        form id=(form_id(op)) method="post" action=(ctx.link(&format!("do/{op}"))) {
            @if let Some(f) = flash.filter(|f| f.op == op) {
                p.error role="alert" { (f.message) }
            }
            input type="hidden" name="csrf" value=(ctx.csrf());
            @if let Some(s) = seen.filter(|s| !s.is_empty()) {
                input type="hidden" name="seen" value=(s);
            }
            @for (k, v) in hidden {
                input type="hidden" name=(k) value=(v);
            }
            (fields)
            button type="submit" { (submit) }
        }
    }
}

/// `mailbox.add` → `mailbox-add`.
pub fn form_id(op: &str) -> String {
    op.replace('.', "-")
}

/// A labelled one-line input.
pub fn text_field(op: &str, name: &str, label: &str, kind: &str, value: &str) -> Markup {
    let id = format!("{}-{name}", form_id(op));
    html! {
        p.field {
            label for=(id) { (label) }
            input id=(id) type=(kind) name=(name) value=(value)
                autocomplete=(autocomplete(kind, name));
        }
    }
}

fn autocomplete(kind: &str, name: &str) -> &'static str {
    match (kind, name) {
        ("password", "old") => "current-password",
        ("password", _) => "new-password",
        _ => "off",
    }
}

/// A labelled text area.
pub fn text_area(op: &str, name: &str, label: &str, value: &str) -> Markup {
    let id = format!("{}-{name}", form_id(op));
    html! {
        p.field {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="6" { (value) }
        }
    }
}

/// A labelled check box sending `value` when checked; checked now if
/// `checked`, or, after a refused change, if it was then.
pub fn check_box(
    flash: Option<&Flash>,
    op: &str,
    name: &str,
    value: &str,
    label: &str,
    checked: bool,
) -> Markup {
    let id = format!("{}-{name}", form_id(op));
    let checked = match flash.filter(|f| f.op == op) {
        Some(f) => f.value(op, name) == Some(value),
        None => checked,
    };
    html! {
        p.check {
            input id=(id) type="checkbox" name=(name) value=(value) checked[checked];
            label for=(id) { (label) }
        }
    }
}

/// A note after a change that was made (`?done=OP`).
pub fn done_note(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.done role="status" { (t) }
        }
    }
}

/// The one page for "no such object" and "not yours": the same bytes
/// whatever was asked, so that nothing tells the two apart.
pub fn not_found(ctx: &Ctx) -> Markup {
    page(
        ctx,
        "Not found",
        html! {
            p { "There is nothing here, or nothing you may see." }
            p { a href=(ctx.link("home")) { "Back to the start" } }
        },
    )
}

/// An error page with a fixed text.
pub fn error(ctx: &Ctx, title: &str, text: &str) -> Markup {
    page(
        ctx,
        title,
        html! {
            p.error { (text) }
            p { a href=(ctx.link("home")) { "Back to the start" } }
        },
    )
}

/// The login page.
pub fn login(ctx: &Ctx, pre: &str, message: Option<&str>, name: &str) -> Markup {
    page(
        ctx,
        "Log in",
        html! {
            form #login method="post" action=(ctx.link("login")) {
                @if let Some(m) = message {
                    p.error role="alert" { (m) }
                }
                input type="hidden" name="csrf" value=(pre);
                p.field {
                    label for="login-name" { "Login name or address" }
                    input #login-name type="text" name="name" value=(name)
                        autocomplete="username" autocapitalize="none" required;
                }
                p.field {
                    label for="login-password" { "Password" }
                    input #login-password type="password" name="password"
                        autocomplete="current-password" required;
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// Bytes for people: `1.2M`, `200K`.
pub fn size(n: u64) -> String {
    crate::quota::human(n)
}

/// A duration for people: `3d 4h`, `2h 5m`, `40s`.
pub fn age(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{seconds}s")
    }
}

/// Usage against quota: a bar (`meter`, no style needed) and the figures.
pub fn usage(used: u64, quota: u64) -> Markup {
    html! {
        @if quota > 0 {
            meter min="0" max=(quota) value=(used.min(quota)) high=(quota / 10 * 9) {
                (used.saturating_mul(100) / quota) "%"
            }
            " " span.figures { (size(used)) " of " (size(quota)) " (" (used.saturating_mul(100) / quota) "%)" }
        } @else {
            span.figures { (size(used)) " (no quota)" }
        }
    }
}
