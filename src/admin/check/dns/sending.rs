//! The box's sending addresses, as receivers see them: reverse DNS,
//! the EHLO name, the blocklists (see [`super`]).

use std::net::IpAddr;

use super::records::spf_mechanisms;
use super::{Level, Net, Report, Setup, list, zone_address, zone_txt};
use crate::dns::{Answer, reverse_name};

/// Reverse DNS of each sending address: a PTR, whose name resolves back
/// to the address (FCrDNS) and is the EHLO name.
pub(super) fn check_ptr(s: &Setup, net: &dyn Net, r: &mut Report) {
    let helo = &s.helo;
    let helo_addresses = match net.addresses(helo) {
        Answer::Found(a) => a,
        _ => Vec::new(),
    };
    'addresses: for ip in s.senders() {
        let subject = ip.to_string();
        // The fix on the provider's side: the PTR names the EHLO name,
        // and the EHLO name has the address (else FCrDNS fails again).
        let mut to_helo = vec![format!("{} IN PTR {helo}.", reverse_name(ip))];
        if !helo_addresses.contains(&ip) {
            to_helo.push(zone_address(helo, ip));
        }
        let names = match net.ptr(ip) {
            Answer::Found(n) => n,
            Answer::NoData | Answer::NoSuchDomain => {
                r.add(
                    Level::Error,
                    &subject,
                    "ptr",
                    format!("no reverse DNS (PTR) for {ip}: Gmail refuses such mail (4.7.23) and others file it as spam; ask whoever gave you the address (the hosting panel's \"reverse DNS\") for the PTR, and publish the rest"),
                    to_helo,
                );
                continue;
            }
            Answer::TempFail(why) => {
                r.dns_failed(&subject, "ptr", "its reverse DNS", &why);
                continue;
            }
        };
        let mut confirmed = Vec::new();
        for n in &names {
            match net.addresses(n) {
                Answer::Found(a) if a.contains(&ip) => confirmed.push(n.clone()),
                Answer::TempFail(why) => {
                    r.dns_failed(&subject, "ptr", &format!("the address of {n}"), &why);
                    continue 'addresses;
                }
                _ => {}
            }
        }
        if confirmed.is_empty() {
            r.add(
                Level::Error,
                &subject,
                "ptr",
                format!("the reverse DNS name of {ip}, {}, does not resolve back to it (forward-confirmed reverse DNS fails): receivers treat the address as nameless; ask for the PTR to name the EHLO name {helo} (the hosting panel's \"reverse DNS\"), and publish the rest", names[0]),
                to_helo,
            );
        } else if !confirmed.iter().any(|n| n == helo) {
            let name = &confirmed[0];
            r.add(
                Level::Warning,
                &subject,
                "ehlo",
                format!("{ip} is named {name} in reverse DNS, but the queue runner says EHLO {helo}: receivers compare the two; set smtp_helo_name = {name} in mailroom.conf, or have the PTR changed to the EHLO name"),
                to_helo,
            );
        }
    }
}

/// The EHLO name: a name with an address, and SPF for bounces.
pub(super) fn check_helo(s: &Setup, net: &dyn Net, r: &mut Report) {
    let helo = &s.helo;
    let senders = s.senders();
    if !helo.contains('.') {
        r.add(
            Level::Error,
            helo,
            "ehlo",
            format!("the EHLO name {helo:?} is not a fully qualified domain name: many receivers refuse it; set hostname (or smtp_helo_name) in mailroom.conf to the name of the sending address"),
            Vec::new(),
        );
        return;
    }
    match net.addresses(helo) {
        Answer::NoData | Answer::NoSuchDomain => r.add(
            Level::Error,
            helo,
            "ehlo",
            format!("the EHLO name {helo} has no address: receivers that check it (Postfix's reject_unknown_helo_hostname) refuse this host's mail; publish"),
            senders.iter().map(|ip| zone_address(helo, *ip)).collect(),
        ),
        Answer::TempFail(why) => r.dns_failed(helo, "ehlo", "the EHLO name's address", &why),
        Answer::Found(_) => {}
    }
    // Bounces (MAIL FROM:<>) are checked against the EHLO name's SPF; when
    // it is one of the domains checked, its SPF was checked already.
    if s.smarthost.is_some() || s.domains.iter().any(|d| d.name == *helo) {
        return;
    }
    let failing: Vec<IpAddr> = senders
        .iter()
        .copied()
        .filter(|ip| !matches!(net.spf(*ip, helo, ""), "pass" | "temperror"))
        .collect();
    if !failing.is_empty() {
        r.add(
            Level::Warning,
            helo,
            "spf",
            format!("SPF of the EHLO name {helo} does not authorise {}: bounces from this host (MAIL FROM:<>) are checked against it; publish", list(&failing)),
            vec![zone_txt(helo, &format!("v=spf1 {} -all", spf_mechanisms(&failing)))],
        );
    }
}

/// The `dnsbl` lists: no sending address is listed.
pub(super) fn check_lists(s: &Setup, net: &dyn Net, r: &mut Report) {
    if s.blocklists.is_empty() {
        return;
    }
    for ip in s.senders() {
        let subject = ip.to_string();
        let score = net.lists(ip, &s.blocklists);
        for hit in score.hits.iter().filter(|h| h.weight > 0) {
            let codes = hit
                .codes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let why = net
                .list_text(ip, &hit.zone)
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            r.add(
                Level::Error,
                &subject,
                "dnsbl",
                format!("{ip} is listed on {} ({codes}{why}): receivers that use the list refuse this host's mail; find what sent spam from here ('mailroom queue summary', the mail log), stop it, then ask the list to remove the address", hit.zone),
                Vec::new(),
            );
        }
        for (zone, codes) in &score.refused {
            let codes = codes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            r.add(
                Level::Warning,
                &subject,
                "dnsbl",
                format!("{zone} answered {codes} for {ip}: an error code, not a listing (the list refuses queries from this resolver, a public or shared one); use a resolver of your own to see what receivers see"),
                Vec::new(),
            );
        }
        for (zone, why) in &score.failed {
            r.dns_failed(&subject, "dnsbl", &format!("the list {zone}"), why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::*;
    use super::*;
    use crate::inbound::dnsbl;

    #[test]
    fn no_ptr_is_an_error_with_the_record_to_ask_for() {
        let (setup, mut net) = world();
        net.ptr.clear();
        let f = findings(&setup, &net);
        let e = only(&f, "ptr", Level::Error);
        assert_eq!(e.subject, IP);
        assert_eq!(
            e.publish,
            vec!["1.100.51.198.in-addr.arpa. IN PTR mx.example.test."]
        );
    }

    #[test]
    fn a_ptr_name_that_does_not_resolve_back_is_an_error() {
        let (setup, mut net) = world();
        net.ptr
            .insert(ip(IP), Answer::Found(vec!["other.example".into()]));
        net.addresses.insert(
            "other.example".into(),
            Answer::Found(vec![ip("203.0.113.5")]),
        );
        let f = findings(&setup, &net);
        let e = only(&f, "ptr", Level::Error);
        assert!(
            e.text.contains("other.example, does not resolve back"),
            "{e:?}"
        );
        assert_eq!(
            e.publish,
            vec!["1.100.51.198.in-addr.arpa. IN PTR mx.example.test."]
        );
    }

    #[test]
    fn a_ptr_name_other_than_the_ehlo_name_warns() {
        let (setup, mut net) = world();
        net.ptr
            .insert(ip(IP), Answer::Found(vec!["vps-1.provider.example".into()]));
        net.addresses
            .insert("vps-1.provider.example".into(), Answer::Found(vec![ip(IP)]));
        let f = findings(&setup, &net);
        let w = only(&f, "ehlo", Level::Warning);
        assert!(
            w.text.contains("smtp_helo_name = vps-1.provider.example"),
            "{w:?}"
        );
    }

    #[test]
    fn an_ehlo_name_without_address_or_spf_is_reported() {
        let (mut setup, mut net) = world();
        setup.helo = "out.example.test".into();
        net.ptr
            .insert(ip(IP), Answer::Found(vec!["out.example.test".into()]));
        let f = findings(&setup, &net);
        let e: Vec<_> = f
            .iter()
            .filter(|x| x.subject == "out.example.test")
            .collect();
        assert_eq!(e.len(), 2, "{f:#?}");
        assert_eq!((e[0].check, e[0].level), ("ehlo", Level::Error));
        let ptr = only(&f, "ptr", Level::Error);
        assert_eq!(
            ptr.publish,
            vec![
                "1.100.51.198.in-addr.arpa. IN PTR out.example.test.",
                "out.example.test. IN A 198.51.100.1"
            ]
        );
        assert_eq!(e[0].publish, vec!["out.example.test. IN A 198.51.100.1"]);
        assert_eq!((e[1].check, e[1].level), ("spf", Level::Warning));
    }

    #[test]
    fn a_listed_address_is_an_error_and_a_refusing_list_a_warning() {
        let (setup, mut net) = world();
        let box_ip = ip(IP);
        let code = |s: &str| dnsbl::Answer::Listed(vec![s.parse().unwrap()]);
        net.listed
            .insert((box_ip, "zen.example".into()), code("127.0.0.2"));
        net.list_text.insert(
            (box_ip, "zen.example".into()),
            "https://zen.example/why".into(),
        );
        net.listed
            .insert((box_ip, "bl.example".into()), code("127.255.255.254"));
        let f = findings(&setup, &net);
        let listed: Vec<_> = f.iter().filter(|x| x.check == "dnsbl").collect();
        assert_eq!(listed.len(), 2, "{f:#?}");
        assert_eq!(listed[0].level, Level::Error);
        assert!(
            listed[0]
                .text
                .contains("listed on zen.example (127.0.0.2: https://zen.example/why)"),
            "{:?}",
            listed[0]
        );
        assert_eq!(listed[1].level, Level::Warning);
        assert!(
            listed[1].text.contains("127.255.255.254"),
            "{:?}",
            listed[1]
        );
        // A code outside the filter is no listing; a list that does not
        // answer is not checked.
        net.listed
            .insert((box_ip, "zen.example".into()), code("127.0.0.200"));
        net.listed.insert(
            (box_ip, "bl.example".into()),
            dnsbl::Answer::Failed("timed out".into()),
        );
        let f = findings(&setup, &net);
        only(&f, "dnsbl", Level::Unchecked);
    }
}
