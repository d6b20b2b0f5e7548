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
//! are one text field, split on spaces, commas and new lines.
//!
//! | path | page |
//! |------|------|
//! | `GET /` | the login form (`form#login`: `name`, `password`) or, logged in, a redirect to `home` |
//! | `POST login`, `POST logout` | log in (a fresh session) / out |
//! | `GET home` | by role: the domain list, the domain admin's domain, or `me` |
//! | `GET domains` | box admin: every domain, `form#domain-add` |
//! | `GET d/DOMAIN` | a domain: mailboxes with usage bars, aliases, forwards, catch-all, autoresponders, lists; `form#mailbox-add`, `form#alias-set`, `form#catchall-set`, `form#list-create` |
//! | `GET d/DOMAIN/m/ADDRESS` | one mailbox: `form#mailbox-password`, `form#mailbox-quota`, `form#forward-set`, `form#autoreply-set`, `form#filter-set`, and links to remove |
//! | `GET d/DOMAIN/queue` | the domain's queued messages with each one's last error |
//! | `GET d/DOMAIN/import` | `form#import` |
//! | `GET me` | the user's own mailbox: usage, `form#password-change`, `form#forward-set`, `form#autoreply-set`, `form#filter-set` |
//! | `GET confirm/OP?…` | "Remove …?": `form#OP` with the fields, and Cancel |
//! | `POST do/OP` | the change; then `303` to the object's page, or the form again with the error |

pub mod protocol;
