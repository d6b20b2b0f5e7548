//! The web control panel's front end: what a browser talks to.  It runs
//! unprivileged, once per request (CGI under Apache, or nginx with
//! fcgiwrap) or once per connection on its own TLS port (inetd or a
//! systemd socket, as pop3d), and holds nothing but the session cookie.
//! Everything it shows or changes it asks of the root helper, one request
//! and one answer each ([`protocol`]); the helper
//! ([`crate::admin::panel`]) checks the login, the session, the CSRF token
//! and who may touch which object, and makes the change with the
//! `mailroom` command's own code.
//!
//! ```text
//!  browser ──https──▶ Apache/nginx ──CGI──▶ panel (www-data) ──stdin/stdout──▶ panel-helper (set-uid root)
//!  browser ──https:8443──▶ inetd ──▶ panel --inetd (root → www-data)  ┘        login::Door, admin::*, change
//! ```
//!
//! ## Pages and forms
//!
//! Paths are below the panel's base (`SCRIPT_NAME`, e.g. `/mail`; `/` on
//! its own port).  Every page is rendered on the server and works without
//! JavaScript.  Reads are `GET`; every change is a `POST` to `do/OP`, OP
//! one of the helper's operations ([`protocol::Op`]), with that
//! operation's fields as form fields of the same names, the session's
//! `csrf` token, and `seen` (the object's stamp as the page showed it)
//! where the object exists.  A form's `id` is its operation with `.`
//! made `-` (`form#mailbox-add`); repeated fields (`target`, `member`)
//! are one text field, split on spaces, commas and new lines; check
//! boxes (`keep`, `virtual`, `posting`) and optional fields (`owner`,
//! `interval`) are passed on only when given.  A form that would make
//! an object the helper stamps (alias, forward, catch-all, autoreply,
//! filter) where there is none yet carries `seen=none`.
//!
//! | path | page |
//! |------|------|
//! | `GET /` | the login form (`form#login`: `name`, `password`, and `csrf`: the pre-session token of cookie `__Host-mailroom-pre`) or, logged in, a redirect to `home` |
//! | `POST login` | log in: a fresh session from the helper (`303` to `home`), or the form again, `403`, "Invalid login name or password." for every failure |
//! | `POST logout` | `form#logout` (in every page's header): the session ends, `303` to `/` |
//! | `GET home` | by role: `303` to `domains`, the domain admin's domain (`domains` if several), or `me` |
//! | `GET domains` | the domains the session may see; box admin: `form#domain-add` (`domain`, `virtual`) and links to remove |
//! | `GET d/DOMAIN` | a domain: mailboxes with usage bars, aliases, forwards, catch-all, autoresponders, lists, links to `queue` and `import`; `form#mailbox-add` (`address`, `password`, `quota`, `virtual`), `form#alias-set` (`address`, `target`), `form#catchall-set` (`target`), `form#list-create` (`address`, `member`, `owner`, `posting`) |
//! | `GET d/DOMAIN?alias=ADDRESS` | the same, with that alias in `form#alias-set` (and its `seen`) |
//! | `GET d/DOMAIN?list=ADDRESS` | the same, with that list's members (each with a link to remove), and `form#list-add` |
//! | `GET d/DOMAIN/m/ADDRESS` | one mailbox: usage, `form#mailbox-password`, `form#mailbox-quota`, `form#forward-set` (`target`, `keep`), `form#autoreply-set` (`subject`, `text`, `from`, `until`, `interval`), `form#filter-set` (`rules`), and links to remove |
//! | `GET d/DOMAIN/queue` | the domain's queued messages with each one's last error |
//! | `GET d/DOMAIN/import` | `form#import` (`text`, `virtual`) |
//! | `GET me` | the user's own mailbox: usage, `form#password-change` (`old`, `new`), `form#forward-set`, `form#autoreply-set`, `form#filter-set` (these carry `page=me`: the answer comes back to `me`) |
//! | `GET confirm/OP?FIELDS` | for the removals (`domain.remove`, `mailbox.remove`, `alias.remove`, `catchall.clear`, `forward.clear`, `autoreply.clear`, `list.delete`, `list.drop`, `filter.clear`): the object is looked up first (`404` if the session may not see it), then "Remove …?", `form#OP` with the fields and the object's `seen`, and Cancel |
//! | `POST do/OP` | the change; then `303` to the object's page with `?done=OP` (a fixed "saved" text), or the form again with the helper's message and what was typed: `409` (`stale`), `422` (`failed`) |
//! | `GET style.css` | the one stylesheet |
//!
//! Answers for everyone: `nosession` → `303` to `/` (the cookie is
//! cleared); `missing`, and any path not in the map → `404`, one page
//! with the same bytes whatever was asked.  A `POST` is refused with
//! `403` before the helper is asked to change anything when its `csrf`
//! field is not the session's (from `whoami`), when `Sec-Fetch-Site` is
//! `cross-site`, or when an `Origin` is given that is not this site; and
//! with `415` when it is not a form.
//!
//! Every response carries the Content-Security-Policy of
//! [`http::CSP`] (no script, no inline style), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`,
//! `Cache-Control: no-store`, and, on the panel's own port,
//! `Strict-Transport-Security`.
//!
//! ## Modules
//!
//! * [`app`] — routes, session and CSRF checks, answers into responses.
//! * [`pages`], [`layout`] — the HTML (maud): every page and form.
//! * [`http`] — the request and response, cookies, security headers.
//! * [`cgi`] — the CGI way in; [`inetd`] — the own TLS port's HTTP/1.1.
//! * [`client`] — running the helper; [`protocol`] — what it is asked.

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[(
    "panel_user",
    DEFAULT_USER,
    "the user `panel --inetd` becomes once it has read the TLS key",
)];

/// `panel_user`'s default: the web server's user on Debian.
pub const DEFAULT_USER: &str = "www-data";

pub mod app;
pub mod cgi;
pub mod client;
pub mod http;
pub mod inetd;
pub mod layout;
pub mod pages;
pub mod protocol;
