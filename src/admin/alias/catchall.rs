//! `mailroom catchall set|clear`: every address of a domain that nothing
//! else takes, the virtusertable's `@DOMAIN` entry.  A virtual domain
//! without a catch-all keeps `@DOMAIN` [`REFUSAL`], which refuses them.

use super::target::check_targets;
use super::{Texts, join_targets};
use crate::admin::directory::DomainKind;
use crate::admin::directory::{Directory, REFUSAL, is_refusal, require_domain};
use crate::admin::names::{derive_name, is_derived, parse_domain};
use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure};
use crate::table::makemap;
use crate::table::source::Overlay;

/// Stage `catchall set DOMAIN TARGET...`.
pub fn plan_catchall(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    targets: &[String],
) -> Result<(), Failure> {
    catchall_set(change, cfg, domain, targets).map(|_| ())
}

/// `catchall set` staged, with what the command prints (the `mailroom`
/// command and the web panel).
pub fn catchall_set(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
    targets: &[String],
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let d = parse_domain(domain.trim_start_matches('@'))?;
    require_domain(&view, &d)?;
    let key = format!("@{d}");
    let owner = format!("catchall@{d}");
    // The targets must reach somewhere without this catch-all: checked
    // as if `@d` refused everything, a target only the catch-all itself
    // would take (it would loop back to it) does not exist.
    let ts = {
        let mut without = Overlay::new(change);
        let vut = change.text(&view.vut_path)?;
        without.set(&view.vut_path, makemap::set_entry(&vut, &key, REFUSAL));
        check_targets(&Directory::staged(cfg, &without)?, cfg, targets, &key)?
    };
    let mut texts = Texts::read(change, cfg)?;
    let mut notes = Vec::new();
    // The line refusing unknown addresses (a virtual domain's) is replaced
    // in place; it is no catch-all to replace.
    let refusal = view.vut_get(&key).filter(|(v, _)| is_refusal(v));
    let old = view
        .catch_all(&d)
        .map(|(v, l)| (v.trim().to_ascii_lowercase(), l));
    let value = if ts.len() == 1 && ts[0].simple {
        ts[0].text.clone()
    } else {
        // Reuse the entry made for the old catch-all, else a new name.
        let name = match &old {
            Some((v, _)) if is_derived(&owner, v) && view.user(v).is_none() => v.clone(),
            _ => view.free_name(&derive_name(&owner)),
        };
        texts.aliases = crate::aliases::set_entry(&texts.aliases, &name, &join_targets(&ts));
        name
    };
    texts.vut = makemap::set_entry(&texts.vut, &key, &value);
    if let Some((v, l)) = refusal {
        notes.push(format!(
            "{d}: replacing {}:{l} ({key} {}): unknown addresses were refused",
            view.vut_path.display(),
            v.trim()
        ));
    }
    if let Some((v, l)) = &old {
        notes.push(format!(
            "{d}: replacing the catch-all at {}:{l} (was {v})",
            view.vut_path.display()
        ));
        if *v != value && texts.drop_generated(change, cfg, &owner, v) {
            notes.push(format!("{v}: aliases entry removed"));
        }
    }
    notes.push(format!(
        "{d}: catch-all on: every other address of {d} goes to {}",
        join_targets(&ts)
    ));
    texts.stage(change);
    Ok(notes)
}

/// Stage `catchall clear DOMAIN`.
pub fn plan_catchall_clear(change: &mut Change, cfg: &Config, domain: &str) -> Result<(), Failure> {
    catchall_clear(change, cfg, domain).map(|_| ())
}

/// `catchall clear` staged, with what the command prints.
pub fn catchall_clear(
    change: &mut Change,
    cfg: &Config,
    domain: &str,
) -> Result<Vec<String>, Failure> {
    let view = Directory::of_change(change, cfg)?;
    let d = parse_domain(domain.trim_start_matches('@'))?;
    let key = format!("@{d}");
    // A virtual domain needs its `@d` entry refusing unknown addresses:
    // without one they would be relayed to the domain's MX.
    let is_virtual = matches!(view.domain(&d), Some((DomainKind::Virtual, _)));
    let old = match view.vut_get(&key) {
        Some((v, l)) if is_refusal(v) => {
            return Ok(vec![format!(
                "{d} has no catch-all: unknown addresses of {d} are refused ({}:{l}: {key} {}); nothing to do",
                view.vut_path.display(),
                v.trim()
            )]);
        }
        Some((v, _)) => Some(v.trim().to_ascii_lowercase()),
        None if is_virtual => None,
        None => {
            return Err(
                Failure::new(ExitCode::NoUser, format!("{d} has no catch-all"))
                    .hint("see 'mailroom alias list'"),
            );
        }
    };
    let mut texts = Texts::read(change, cfg)?;
    texts.vut = if is_virtual {
        makemap::set_entry(&texts.vut, &key, REFUSAL)
    } else {
        makemap::remove_entry(&texts.vut, &key).unwrap_or(texts.vut)
    };
    let refused = if is_virtual {
        format!(" ({key} {REFUSAL})")
    } else {
        String::new()
    };
    let Some(old) = old else {
        texts.stage(change);
        return Ok(vec![format!(
            "{d} had no catch-all; unknown addresses of {d} are now refused{refused}"
        )]);
    };
    let mut notes = vec![format!(
        "{d}: catch-all off (was {old}); unknown addresses of {d} are refused{refused}"
    )];
    if texts.drop_generated(change, cfg, &format!("catchall@{d}"), &old) {
        notes.push(format!("{old}: aliases entry removed"));
    }
    texts.stage(change);
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::super::list;
    use super::super::target::check_target;
    use super::*;
    use crate::admin::directory::test_site;
    use crate::admin::names::parse_address;

    #[test]
    fn a_refusing_domain_entry_is_no_catch_all() {
        assert!(is_refusal(REFUSAL));
        assert!(is_refusal(" error:nouser No such user"));
        assert!(!is_refusal("bob"));
        assert!(!is_refusal("errors@example.com"));
        let (dir, cfg) = test_site();
        std::fs::write(
            cfg.paths.etc_mail("virtusertable"),
            format!(
                "info@shop.example\tinfo-shop\ngone@shop.example\terror:nouser gone\n@shop.example\t{REFUSAL}\n@example.com\t{REFUSAL}\n"
            ),
        )
        .unwrap();
        let v = Directory::on_disk(&cfg);
        assert_eq!(v.catch_all("shop.example"), None);
        assert_eq!(v.vut_get("@shop.example"), Some((REFUSAL, 3)));
        // Unknown and refused addresses do not exist; made ones do.
        assert!(v.address_resolves("info", "shop.example"));
        assert!(!v.address_resolves("nosuch", "shop.example"));
        assert!(!v.address_resolves("gone", "shop.example"));
        // In a local domain the entry comes before the local names too.
        assert!(!v.address_resolves("bob", "example.com"));
        assert_eq!(v.owner(&parse_address("bob@example.com").unwrap()), None);
        assert!(check_target(&v, &cfg, "nosuch@shop.example", "x").is_err());
        assert!(list::rows(&v).iter().all(|r| r.kind != "catchall"));

        // `catchall set` replaces it in place, `clear` puts it back.
        let mut c = Change::begin(&cfg).unwrap();
        let vut_path = cfg.paths.etc_mail("virtusertable");
        plan_catchall(&mut c, &cfg, "shop.example", &["bob".into()]).unwrap();
        let vut = c.text(&vut_path).unwrap();
        assert!(
            vut.contains("gone\n@shop.example\tbob\n@example.com"),
            "{vut}"
        );
        let v = Directory::of_change(&c, &cfg).unwrap();
        assert_eq!(v.catch_all("shop.example"), Some(("bob", 3)));
        assert!(v.address_resolves("nosuch", "shop.example"));
        plan_catchall_clear(&mut c, &cfg, "shop.example").unwrap();
        let vut = c.text(&vut_path).unwrap();
        assert!(
            vut.contains(&format!("gone\n@shop.example\t{REFUSAL}\n@example.com")),
            "{vut}"
        );
        // Again: nothing to do, not an error.
        let notes = catchall_clear(&mut c, &cfg, "shop.example").unwrap();
        assert!(notes[0].contains("nothing to do"), "{notes:?}");
        assert_eq!(c.text(&vut_path).unwrap(), vut);
        // A local domain's refusing entry is no catch-all either.
        catchall_clear(&mut c, &cfg, "example.com").unwrap();
        assert_eq!(c.text(&vut_path).unwrap(), vut);
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }

    // A local domain's catch-all comes before its local names: a target
    // there that only a local name takes would come back to the
    // catch-all (sendmail 8: "excessive recursion").  The bare name is
    // the way to say it.
    #[test]
    fn a_catch_all_target_only_the_catch_all_would_take_is_refused() {
        let (dir, cfg) = test_site();
        let mut c = Change::begin(&cfg).unwrap();
        let e =
            plan_catchall(&mut c, &cfg, "example.com", &["bob@example.com".into()]).unwrap_err();
        assert_eq!(e.code, ExitCode::NoUser, "{e}");
        assert!(c.is_empty());
        plan_catchall(&mut c, &cfg, "example.com", &["bob".into()]).unwrap();
        let v = Directory::of_change(&c, &cfg).unwrap();
        assert!(v.address_resolves("anyone", "example.com"));
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
