//! From a request to a response: the routes of the map in [`super`], the
//! session and CSRF checks, the helper's answers turned into pages and
//! redirects.  Transport-free: CGI ([`super::cgi`]) and the panel's own
//! port ([`super::inetd`]) both hand their requests here.

use maud::Markup;

use super::client::Helper;
use super::http::{
    Method, PRE_COOKIE, Request, Response, SESSION_COOKIE, random_token, segment, tokens_equal,
};
use super::layout::{self, Ctx, Flash, User, domain_of};
use super::pages::{self, Selection, find};
use super::protocol::{Answer, Record, Role};

/// The stylesheet (the only one; CSP allows nothing inline).
const STYLE: &str = include_str!("style.css");

/// What the one login failure says, whatever the reason.
pub const REFUSED: &str = "Invalid login name or password.";

/// Every change a form may post (`do/OP`): its fields (`*`: repeated,
/// typed as one text and split on spaces, commas and new lines; `?`:
/// optional, passed on only when given, as check boxes are), whether it
/// removes (and so is confirmed first), and what the page says once it
/// is done.
#[rustfmt::skip]
const CHANGES: &[(&str, &[&str], bool, &str)] = &[
    ("domain.add", &["domain", "virtual?"], false, "The domain was added."),
    ("domain.remove", &["domain"], true, "The domain was removed."),
    ("mailbox.add", &["address", "password", "quota", "virtual?"], false, "The mailbox was added."),
    ("mailbox.remove", &["address"], true, "The mailbox was removed."),
    ("mailbox.password", &["address", "password"], false, "The password was set."),
    ("mailbox.quota", &["address", "quota"], false, "The quota was set."),
    ("import", &["domain", "text", "virtual?"], false, "The records were imported."),
    ("alias.set", &["address", "target*"], false, "The alias was saved."),
    ("alias.remove", &["address"], true, "The alias was removed."),
    ("forward.set", &["address", "target*", "keep?"], false, "The forward was saved."),
    ("forward.clear", &["address"], true, "Forwarding was stopped."),
    ("catchall.set", &["domain", "target*"], false, "The catch-all was saved."),
    ("catchall.clear", &["domain"], true, "The catch-all was removed."),
    ("autoreply.set", &["address", "subject", "text", "from", "until", "interval?"], false, "The autoreply was saved."),
    ("autoreply.clear", &["address"], true, "The autoreply was turned off."),
    ("list.create", &["address", "member*", "owner?", "posting?"], false, "The list was created."),
    ("list.delete", &["address"], true, "The list was deleted."),
    ("list.add", &["address", "member*"], false, "The members were added."),
    ("list.drop", &["address", "member*"], true, "The member was removed."),
    ("filter.set", &["address", "rules"], false, "The filter rules were saved."),
    ("filter.clear", &["address"], true, "The filter rules were removed."),
    ("password.change", &["old", "new"], false, "Your password was changed."),
];

fn change(
    op: &str,
) -> Option<&'static (&'static str, &'static [&'static str], bool, &'static str)> {
    CHANGES.iter().find(|c| c.0 == op)
}

/// Answer one request.  Never panics on anything a client sends.
pub fn handle(helper: &mut dyn Helper, req: &Request) -> Response {
    let mut app = App {
        helper,
        req,
        ctx: Ctx {
            base: req.base.clone(),
            user: None,
        },
    };
    let route: Vec<&str> = req.route.split('/').collect();
    let get = req.method.is_safe();
    let post = req.method == Method::Post;
    match (route.as_slice(), get, post) {
        ([""], true, _) => app.start(),
        (["style.css"], true, _) => Response::css(STYLE),
        (["login"], _, true) => app.login(),
        (["logout"], _, true) => app.logout(),
        (["home"], true, _) => app.home(),
        (["domains"], true, _) => app.domains(None),
        (["d", d], true, _) => app.domain(d, None),
        (["d", d, "m", a], true, _) => app.mailbox(d, a, None),
        (["d", d, "queue"], true, _) => app.queue(d),
        (["d", d, "import"], true, _) => app.import(d, None),
        (["me"], true, _) => app.me(None),
        (["confirm", op], true, _) => app.confirm(op, None),
        (["do", op], _, true) => app.change(op),
        (
            [""]
            | ["style.css"]
            | ["home"]
            | ["domains"]
            | ["d", _]
            | ["d", _, "m", _]
            | ["d", _, "queue"]
            | ["d", _, "import"]
            | ["me"]
            | ["confirm", _],
            false,
            _,
        ) => app
            .html(405, layout::error(&app.ctx, "Not allowed", "Use GET here."))
            .with_header("Allow", "GET, HEAD"),
        (["login"] | ["logout"] | ["do", _], _, false) => app
            .html(
                405,
                layout::error(&app.ctx, "Not allowed", "Use POST here."),
            )
            .with_header("Allow", "POST"),
        _ => app.not_found(),
    }
}

struct App<'a> {
    helper: &'a mut dyn Helper,
    req: &'a Request,
    ctx: Ctx,
}

/// A page that cannot be made: the response to send instead.
type Page<T> = Result<T, Response>;

impl App<'_> {
    fn html(&self, status: u16, markup: Markup) -> Response {
        Response::html(status, markup)
    }

    /// The same bytes for every object, whoever asks and whether or not
    /// it exists: not even the header with who is logged in differs.
    fn not_found(&self) -> Response {
        let anonymous = Ctx {
            base: self.ctx.base.clone(),
            user: None,
        };
        Response::html(404, layout::not_found(&anonymous))
    }

    fn to_login(&self) -> Response {
        Response::redirect(&self.ctx.link("")).clear_cookie(SESSION_COOKIE)
    }

    fn forbidden(&self, text: &str) -> Response {
        Response::html(403, layout::error(&self.ctx, "Refused", text))
    }

    /// The helper did not answer sensibly: logged, and a page that says so.
    fn broken(&self, why: &str) -> Response {
        crate::log::err(None, &format!("no answer from the helper: {why}"));
        Response::html(
            502,
            layout::error(
                &self.ctx,
                "Not available",
                "The panel cannot reach its service just now. Please try again later.",
            ),
        )
    }

    /// Ask the helper `op` for the session (`fields` after it).
    fn ask(&mut self, op: &str, fields: &[(&str, &str)]) -> Page<Answer> {
        let mut r = Record::new().with("op", op);
        if let Some(u) = &self.ctx.user {
            r.push("session", u.token.clone());
        }
        r.push("from", self.req.remote.clone());
        for (k, v) in fields {
            r.push(k, *v);
        }
        self.helper.ask(&r).map_err(|e| self.broken(&e))
    }

    /// The logged-in session (`whoami`), or the response that sends the
    /// browser to the login page.
    fn session(&mut self) -> Page<()> {
        if self.ctx.user.is_some() {
            return Ok(());
        }
        let Some(token) = self.req.cookie(SESSION_COOKIE) else {
            return Err(self.to_login());
        };
        let r = Record::new()
            .with("op", "whoami")
            .with("session", token.clone())
            .with("from", self.req.remote.clone());
        match self.helper.ask(&r) {
            Ok(Answer::Session {
                csrf,
                login,
                role,
                domains,
                ..
            }) => {
                self.ctx.user = Some(User {
                    token,
                    csrf,
                    login,
                    role,
                    domains,
                });
                Ok(())
            }
            Ok(Answer::NoSession) => Err(self.to_login()),
            Ok(other) => Err(self.broken(&format!("whoami answered {other:?}"))),
            Err(e) => Err(self.broken(&e)),
        }
    }

    /// A read's records; `missing` is the one "not found" page.
    fn read(&mut self, op: &str, fields: &[(&str, &str)]) -> Page<Vec<Record>> {
        match self.ask(op, fields)? {
            Answer::Data(records) => Ok(records),
            Answer::NoSession => Err(self.to_login()),
            Answer::Missing => Err(self.not_found()),
            other => Err(self.broken(&format!("{op} answered {other:?}"))),
        }
    }

    fn role(&self) -> Option<Role> {
        self.ctx.user.as_ref().map(|u| u.role)
    }

    /// `?done=OP` after a change: its fixed text (never the query's).
    fn done(&self) -> Option<&'static str> {
        let q = self.req.query_fields();
        let op = q.iter().find(|(k, _)| k == "done")?.1.as_str();
        change(op).map(|c| c.3)
    }

    fn query(&self, key: &str) -> Option<String> {
        self.req
            .query_fields()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn start(&mut self) -> Response {
        if self.req.cookie(SESSION_COOKIE).is_some() {
            match self.session() {
                Ok(()) => return Response::redirect(&self.ctx.link("home")),
                Err(r) if r.status != 303 => return r,
                Err(_) => {}
            }
            return self.login_page(200, None, "").clear_cookie(SESSION_COOKIE);
        }
        self.login_page(200, None, "")
    }

    /// The login form, with the pre-session token in a cookie and a
    /// hidden field (a fresh one unless the browser has one).
    fn login_page(&self, status: u16, message: Option<&str>, name: &str) -> Response {
        let (pre, new) = match self.req.cookie(PRE_COOKIE) {
            Some(p) if p.len() == 64 => (p, false),
            _ => match random_token() {
                Some(t) => (t, true),
                None => return self.broken("no random numbers for the login token"),
            },
        };
        let ctx = Ctx {
            base: self.ctx.base.clone(),
            user: None,
        };
        let r = Response::html(status, layout::login(&ctx, &pre, message, name));
        if new {
            r.with_header(
                "Set-Cookie",
                &cookie::Cookie::build((PRE_COOKIE, pre.as_str()))
                    .path("/")
                    .secure(true)
                    .http_only(true)
                    .same_site(cookie::SameSite::Strict)
                    .build()
                    .to_string(),
            )
        } else {
            r
        }
    }

    /// The checks of every POST before anything is asked: same site,
    /// a form body.
    fn post_allowed(&self) -> Page<Vec<(String, String)>> {
        if !self.req.same_origin() {
            return Err(self.forbidden("This form was sent from another site."));
        }
        if !self.req.has_form_body() {
            return Err(Response::html(
                415,
                layout::error(&self.ctx, "Not a form", "Only forms are accepted here."),
            ));
        }
        Ok(self.req.form())
    }

    fn login(&mut self) -> Response {
        let form = match self.post_allowed() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let field = |k: &str| {
            form.iter()
                .find(|(f, _)| f == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let pre = self.req.cookie(PRE_COOKIE).unwrap_or_default();
        if !tokens_equal(&pre, field("csrf")) {
            // The form again, with the browser's token (or a new one).
            return self.login_page(
                403,
                Some("The login form had expired. Please log in again."),
                field("name"),
            );
        }
        let answer = self.ask(
            "login",
            &[("name", field("name")), ("password", field("password"))],
        );
        match answer {
            Ok(Answer::Session { session, .. }) => Response::redirect(&self.ctx.link("home"))
                .set_session(&session)
                .clear_cookie(PRE_COOKIE),
            Ok(Answer::Refused | Answer::NoSession | Answer::Missing | Answer::Failed { .. }) => {
                self.login_page(403, Some(REFUSED), field("name"))
            }
            Ok(other) => self.broken(&format!("login answered {other:?}")),
            Err(r) => r,
        }
    }

    /// A POST's session and CSRF token, checked here before the helper
    /// is asked to change anything (it checks again).
    fn checked_post(&mut self) -> Page<Vec<(String, String)>> {
        let form = self.post_allowed()?;
        let sent = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if sent.is_empty() {
            return Err(self.forbidden("This form has no security token. Please reload the page."));
        }
        self.session()?;
        let csrf = self.ctx.user.as_ref().map_or("", |u| u.csrf.as_str());
        if !tokens_equal(csrf, &sent) {
            return Err(self
                .forbidden("This form does not belong to your session. Please reload the page."));
        }
        Ok(form)
    }

    fn logout(&mut self) -> Response {
        if self.req.cookie(SESSION_COOKIE).is_none() {
            return self.to_login();
        }
        if let Err(r) = self.checked_post() {
            return r;
        }
        let csrf = self
            .ctx
            .user
            .as_ref()
            .map(|u| u.csrf.clone())
            .unwrap_or_default();
        match self.ask("logout", &[("csrf", &csrf)]) {
            Ok(_) => self.to_login(),
            Err(r) => r,
        }
    }

    fn home(&mut self) -> Response {
        if let Err(r) = self.session() {
            return r;
        }
        let u = self.ctx.user.as_ref().expect("session");
        let to = match (u.role, u.domains.as_slice()) {
            (Role::Admin, _) => "domains".to_string(),
            (Role::DomainAdmin, [one]) => format!("d/{}", segment(one)),
            (Role::DomainAdmin, _) => "domains".to_string(),
            (Role::User, _) => "me".to_string(),
        };
        Response::redirect(&self.ctx.link(&to))
    }

    fn domains(&mut self, flash: Option<&Flash>) -> Response {
        let data = match self.session().and_then(|()| self.read("domains", &[])) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let status = flash_status(flash);
        self.html(status, pages::domains(&self.ctx, &data, flash, self.done()))
    }

    fn domain(&mut self, domain: &str, flash: Option<&Flash>) -> Response {
        let data = match self
            .session()
            .and_then(|()| self.read("domain.show", &[("domain", domain)]))
        {
            Ok(d) => d,
            Err(r) => return r,
        };
        let sel = Selection {
            alias: self.query("alias"),
            list: self.query("list").or_else(|| {
                flash
                    .filter(|f| f.op == "list.add")
                    .and_then(|f| f.values.iter().find(|(k, _)| k == "address"))
                    .map(|(_, v)| v.clone())
            }),
        };
        let page = pages::domain(&self.ctx, domain, &data, &sel, flash, self.done());
        self.html(flash_status(flash), page)
    }

    fn mailbox(&mut self, domain: &str, address: &str, flash: Option<&Flash>) -> Response {
        if domain_of(address) != domain {
            return self.not_found();
        }
        let data = match self
            .session()
            .and_then(|()| self.read("domain.show", &[("domain", domain)]))
        {
            Ok(d) => d,
            Err(r) => return r,
        };
        let Some(m) = find(&data, "mailbox", "address", address) else {
            return self.not_found();
        };
        let page = pages::mailbox(&self.ctx, m, &data, flash, self.done());
        self.html(flash_status(flash), page)
    }

    fn queue(&mut self, domain: &str) -> Response {
        match self
            .session()
            .and_then(|()| self.read("queue", &[("domain", domain)]))
        {
            Ok(data) => self.html(200, pages::queue(&self.ctx, domain, &data)),
            Err(r) => r,
        }
    }

    /// Whether the session may see `domain` (the helper's list of them).
    fn sees_domain(&mut self, domain: &str) -> Page<()> {
        let data = self.read("domains", &[])?;
        match find(&data, "domain", "domain", domain) {
            Some(_) => Ok(()),
            None => Err(self.not_found()),
        }
    }

    fn import(&mut self, domain: &str, flash: Option<&Flash>) -> Response {
        if let Err(r) = self.session().and_then(|()| self.sees_domain(domain)) {
            return r;
        }
        let page = pages::import(&self.ctx, domain, flash, self.done());
        self.html(flash_status(flash), page)
    }

    fn me(&mut self, flash: Option<&Flash>) -> Response {
        let data = match self.session().and_then(|()| self.read("me", &[])) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let page = pages::me(&self.ctx, &data, flash, self.done());
        self.html(flash_status(flash), page)
    }

    /// `confirm/OP?fields`: the object must exist and be the session's;
    /// its stamp goes into the form as `seen`.
    fn confirm(&mut self, op: &str, flash: Option<&Flash>) -> Response {
        let Some(&(op, names, true, _)) = change(op) else {
            return self.not_found();
        };
        if let Err(r) = self.session() {
            return r;
        }
        let given: Vec<(String, String)> = match flash {
            Some(f) => f.values.clone(),
            None => self.req.query_fields(),
        };
        let get = |k: &str| {
            given
                .iter()
                .find(|(f, _)| f == k)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        let me = get("page") == "me" || self.role() == Some(Role::User);
        let (key, name) = if names[0] == "domain" {
            ("domain", get("domain"))
        } else {
            ("address", get("address"))
        };
        let (stamp, question, back) = match self.lookup(op, &name, me) {
            Ok(found) => found,
            Err(r) => return r,
        };
        let member = get("member");
        let question = if op == "list.drop" {
            format!("Remove {member} from the list {name}?")
        } else {
            question
        };
        let mut fields = vec![(key.to_string(), name)];
        if op == "list.drop" {
            fields.push(("member".into(), member));
        }
        if me {
            fields.push(("page".into(), "me".into()));
        }
        if let Some(s) = stamp {
            fields.push(("seen".into(), s));
        }
        let page = pages::confirm(&self.ctx, op, &question, &fields, &back, flash);
        self.html(flash_status(flash), page)
    }

    /// The object a removal names, if the session may see it: its stamp,
    /// the question to ask, and the page to go back to.
    fn lookup(&mut self, op: &str, name: &str, me: bool) -> Page<(Option<String>, String, String)> {
        if op == "domain.remove" {
            self.sees_domain(name)?;
            return Ok((
                None,
                format!("Remove the domain {name} and everything in it?"),
                self.ctx.link("domains"),
            ));
        }
        let kind = match op {
            "catchall.clear" => "catchall",
            "mailbox.remove" | "filter.clear" => "mailbox",
            other => other.split('.').next().unwrap_or(""),
        };
        let (data, back) = if me {
            (self.read("me", &[])?, self.ctx.link("me"))
        } else {
            let domain = if kind == "catchall" {
                name
            } else {
                domain_of(name)
            };
            let data = self.read("domain.show", &[("domain", domain)])?;
            let back = match kind {
                "forward" | "autoreply" | "mailbox" if op != "mailbox.remove" => {
                    self.ctx.mailbox_link(name)
                }
                _ => self.ctx.domain_link(domain),
            };
            (data, back)
        };
        let record = if kind == "catchall" {
            pages::of_kind(&data, "catchall").next()
        } else if me && kind == "mailbox" {
            pages::of_kind(&data, "me").find(|r| r.str("address") == name)
        } else {
            find(&data, kind, "address", name)
        };
        let Some(record) = record else {
            return Err(self.not_found());
        };
        let stamp = if op == "filter.clear" {
            find(&data, "filter", "address", name).map(|f| f.str("stamp").to_string())
        } else {
            record.get("stamp").map(str::to_string)
        };
        let question = match op {
            "mailbox.remove" => format!("Remove the mailbox {name} and all its mail?"),
            "alias.remove" => format!("Remove the alias {name}?"),
            "catchall.clear" => format!("Remove the catch-all of {name}?"),
            "forward.clear" => format!("Stop forwarding the mail of {name}?"),
            "autoreply.clear" => format!("Turn off the autoreply of {name}?"),
            "filter.clear" => format!("Remove every filter rule of {name}?"),
            "list.delete" => format!("Delete the list {name}?"),
            _ => format!("Remove {name}?"),
        };
        Ok((stamp, question, back))
    }

    /// `POST do/OP`: the checks, the change, then the object's page.
    fn change(&mut self, op: &str) -> Response {
        let Some(&(op, names, removal, _)) = change(op) else {
            return self.not_found();
        };
        let form = match self.checked_post() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let get = |k: &str| {
            form.iter()
                .find(|(f, _)| f == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let user = self.ctx.user.clone().expect("checked session");
        let mut r = Record::new()
            .with("op", op)
            .with("session", user.token.clone())
            .with("csrf", user.csrf.clone())
            .with("from", self.req.remote.clone());
        if !get("seen").is_empty() {
            r.push("seen", get("seen"));
        }
        for name in names.iter() {
            if let Some(name) = name.strip_suffix('*') {
                for part in get(name)
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|p| !p.is_empty())
                {
                    r.push(name, part);
                }
            } else if let Some(name) = name.strip_suffix('?') {
                if !get(name).is_empty() {
                    r.push(name, get(name));
                }
            } else {
                r.push(name, get(name));
            }
        }
        let me = get("page") == "me" || user.role == Role::User || op == "password.change";
        let key = if names[0] == "domain" {
            get("domain")
        } else {
            get("address")
        };
        let domain = if names[0] == "domain" {
            key
        } else {
            domain_of(key)
        }
        .to_string();
        let key = key.to_string();
        let answer = match self.helper.ask(&r) {
            Ok(a) => a,
            Err(e) => return self.broken(&e),
        };
        let (message, stale) = match answer {
            Answer::Done { .. } => {
                return Response::redirect(&self.after(op, &domain, &key, me));
            }
            Answer::Session { session, .. } if op == "password.change" => {
                return Response::redirect(&self.after(op, &domain, &key, me))
                    .set_session(&session);
            }
            Answer::NoSession => return self.to_login(),
            Answer::Missing => return self.not_found(),
            Answer::Stale { message } => (message, true),
            Answer::Failed { message } => (message, false),
            Answer::Refused => ("The change was refused.".to_string(), false),
            other => return self.broken(&format!("{op} answered {other:?}")),
        };
        let flash = Flash {
            op: op.to_string(),
            message,
            values: form,
            stale,
        };
        if removal {
            return self.confirm(op, Some(&flash));
        }
        if me {
            return self.me(Some(&flash));
        }
        match op {
            "domain.add" => self.domains(Some(&flash)),
            "import" => self.import(&domain, Some(&flash)),
            "mailbox.add" | "alias.set" | "catchall.set" | "list.create" | "list.add" => {
                self.domain(&domain, Some(&flash))
            }
            _ => self.mailbox(&domain, &key, Some(&flash)),
        }
    }

    /// Where the browser goes after change `op` was made.
    fn after(&self, op: &str, domain: &str, key: &str, me: bool) -> String {
        let route = if me {
            "me".to_string()
        } else {
            match op {
                "domain.add" | "domain.remove" => "domains".to_string(),
                "mailbox.password" | "mailbox.quota" | "forward.set" | "forward.clear"
                | "autoreply.set" | "autoreply.clear" | "filter.set" | "filter.clear" => {
                    format!("d/{}/m/{}", segment(domain), segment(key))
                }
                _ => format!("d/{}", segment(domain)),
            }
        };
        format!("{}?done={op}", self.ctx.link(&route))
    }
}

/// A page shown again after a refused change: 409 when the object had
/// changed meanwhile, 422 when the change itself was refused.
fn flash_status(flash: Option<&Flash>) -> u16 {
    match flash {
        None => 200,
        Some(f) if f.stale => 409,
        Some(_) => 422,
    }
}

#[cfg(test)]
mod tests;
