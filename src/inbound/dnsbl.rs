//! DNS block and allow lists at connect (RFC 5782), configured as
//! Postfix's postscreen does: `ZONE[=FILTER][*WEIGHT]`.
//!
//! * The query is the client's address reversed under the zone: IPv4 by
//!   octets (`99.2.0.192.zen.spamhaus.org`), IPv6 by its 32 nibbles.
//! * An `A` answer in 127/8 that the filter admits counts the site's
//!   weight once (default 1; an allow list's weight is subtracted).
//!   FILTER is `d.d.d.d`, each `d` a number or `[...]` of `;`-separated
//!   numbers and `n..m` ranges: Spamhaus ZEN's listings are
//!   `127.0.0.[2..11]`.
//! * Never counted, filter or not: `127.255.255.0/24`, which lists use for
//!   errors ("query refused through an open resolver", "too many
//!   queries"), and anything outside 127/8.  A list that answers errors
//!   for every query must not refuse every client (it happened with
//!   SpamCop's lapsed domain and with Spamhaus behind public resolvers).
//! * NXDOMAIN is "not listed"; no answer in time is "not listed" too (and
//!   logged): a blocklist outage must not stop mail.
//! * A client whose total reaches `dnsbl_threshold` is refused with the
//!   list's own TXT text.

use std::net::{IpAddr, Ipv4Addr};

/// One `ZONE[=FILTER][*WEIGHT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub zone: String,
    /// Per octet, the ranges admitted; None: any listing code.
    filter: Option<[Vec<(u8, u8)>; 4]>,
    /// Signed: negative for an allow list.
    pub weight: i32,
}

/// The sites of one setting (`dnsbl` or `dnswl`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sites(pub Vec<Site>);

impl Sites {
    /// Parse a setting; `allow`: an allow list (weights count against).
    pub fn parse(s: &str, allow: bool) -> Result<Sites, String> {
        let mut out = Vec::new();
        for item in s.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
            out.push(Site::parse(item, allow)?);
        }
        Ok(Sites(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Site {
    fn parse(item: &str, allow: bool) -> Result<Site, String> {
        let (rest, weight) = match item.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.parse::<i32>()
                    .ok()
                    .filter(|w| *w != 0 && w.abs() <= 1000)
                    .ok_or_else(|| format!("{item}: the weight after * must be a number"))?,
            ),
            None => (item, 1),
        };
        let (zone, filter) = match rest.split_once('=') {
            Some((z, f)) => (z, Some(parse_filter(f).ok_or_else(|| {
                format!("{item}: the filter must be four numbers or [n;n..m] lists, as 127.0.0.[2..11]")
            })?)),
            None => (rest, None),
        };
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        if zone.is_empty()
            || !zone.contains('.')
            || !zone
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
        {
            return Err(format!("{item}: not a DNS zone"));
        }
        let weight = if allow { -weight.abs() } else { weight };
        Ok(Site {
            zone,
            filter,
            weight,
        })
    }

    /// Does this answer count as a listing?
    pub fn counts(&self, code: Ipv4Addr) -> bool {
        let o = code.octets();
        if o[0] != 127 || (o[1] == 255 && o[2] == 255) {
            return false;
        }
        match &self.filter {
            None => true,
            Some(f) => f
                .iter()
                .zip(o)
                .all(|(ranges, b)| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&b))),
        }
    }
}

fn parse_filter(f: &str) -> Option<[Vec<(u8, u8)>; 4]> {
    let mut octets = Vec::new();
    let mut rest = f;
    while !rest.is_empty() {
        let (part, tail) = if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            (&r[..end], &r[end + 1..])
        } else {
            match rest.find('.') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        let mut ranges = Vec::new();
        for p in part.split(';') {
            let (lo, hi) = match p.split_once("..") {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let n = p.trim().parse().ok()?;
                    (n, n)
                }
            };
            if lo > hi {
                return None;
            }
            ranges.push((lo, hi));
        }
        octets.push(ranges);
        rest = match tail.strip_prefix('.') {
            Some(t) if !t.is_empty() => t,
            Some(_) => return None,
            None if tail.is_empty() => "",
            None => return None,
        };
    }
    octets.try_into().ok()
}

/// The name to look up for `ip` in `zone` (RFC 5782 §2.1, §2.4).
pub fn query_name(ip: &IpAddr, zone: &str) -> String {
    // The reverse-DNS name with the list's zone in place of the arpa one.
    let reverse = crate::dns::reverse_name(crate::wire::unmapped(*ip));
    let stem = reverse
        .strip_suffix("in-addr.arpa.")
        .or_else(|| reverse.strip_suffix("ip6.arpa."))
        .unwrap_or(&reverse);
    format!("{stem}{zone}.")
}

/// What one site said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The `A` records (listing codes, before filtering).
    Listed(Vec<Ipv4Addr>),
    NotListed,
    /// No usable answer (timeout, SERVFAIL): counted as not listed.
    Failed(String),
}

/// A site whose answer counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub zone: String,
    pub weight: i32,
    pub codes: Vec<Ipv4Addr>,
}

/// The sum over the sites.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Score {
    pub total: i32,
    pub hits: Vec<Hit>,
    /// Zones that did not answer, with why.
    pub failed: Vec<(String, String)>,
    /// Zones that answered only error codes (127.255.255.x and the like).
    pub refused: Vec<(String, Vec<Ipv4Addr>)>,
}

impl Score {
    /// The blocklist hit with the largest weight: the one named in the reply.
    pub fn worst(&self) -> Option<&Hit> {
        self.hits
            .iter()
            .filter(|h| h.weight > 0)
            .max_by_key(|h| h.weight)
    }
}

/// Add up what each site said (`answers` in the order of `sites`).
pub fn score<'a>(answers: impl IntoIterator<Item = (&'a Site, Answer)>) -> Score {
    let mut out = Score::default();
    for (site, answer) in answers {
        match answer {
            Answer::Listed(codes) => {
                if codes.iter().any(|c| site.counts(*c)) {
                    out.total += site.weight;
                    out.hits.push(Hit {
                        zone: site.zone.clone(),
                        weight: site.weight,
                        codes,
                    });
                } else if codes
                    .iter()
                    .any(|c| c.octets()[0] != 127 || c.octets()[1..3] == [255, 255])
                {
                    out.refused.push((site.zone.clone(), codes));
                }
            }
            Answer::NotListed => {}
            Answer::Failed(why) => out.failed.push((site.zone.clone(), why)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn query_names_follow_rfc_5782() {
        assert_eq!(
            query_name(&ip("192.0.2.99"), "zen.spamhaus.org"),
            "99.2.0.192.zen.spamhaus.org."
        );
        assert_eq!(
            query_name(&ip("2001:db8::1"), "bl.example"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example."
        );
        assert_eq!(
            query_name(&ip("::ffff:192.0.2.1"), "bl.example"),
            "1.2.0.192.bl.example."
        );
    }

    #[test]
    fn filters_weights_and_error_codes() {
        let sites = Sites::parse("zen.spamhaus.org=127.0.0.[2..11]*2 bl.example", false).unwrap();
        let zen = &sites.0[0];
        assert_eq!(zen.weight, 2);
        assert!(zen.counts("127.0.0.2".parse().unwrap()));
        assert!(zen.counts("127.0.0.11".parse().unwrap()));
        assert!(!zen.counts("127.0.0.12".parse().unwrap()));
        assert!(!zen.counts("127.255.255.254".parse().unwrap()));
        let any = &sites.0[1];
        assert!(any.counts("127.0.0.2".parse().unwrap()));
        assert!(any.counts("127.0.1.3".parse().unwrap()));
        assert!(!any.counts("127.255.255.254".parse().unwrap()));
        assert!(!any.counts("127.255.255.255".parse().unwrap()));
        assert!(!any.counts("10.0.0.2".parse().unwrap()));

        let s = score([
            (zen, Answer::Listed(vec!["127.0.0.4".parse().unwrap()])),
            (
                any,
                Answer::Listed(vec!["127.255.255.254".parse().unwrap()]),
            ),
        ]);
        assert_eq!(s.total, 2);
        assert_eq!(s.worst().unwrap().zone, "zen.spamhaus.org");
        assert_eq!(s.refused.len(), 1);
    }

    #[test]
    fn allow_lists_subtract() {
        let wl = Sites::parse("list.dnswl.org=127.0.[0..255].[1;2..3]*3", true).unwrap();
        assert_eq!(wl.0[0].weight, -3);
        assert!(wl.0[0].counts("127.0.10.2".parse().unwrap()));
        assert!(!wl.0[0].counts("127.0.10.0".parse().unwrap()));
        assert!(!wl.0[0].counts("127.0.0.255".parse().unwrap()));
    }

    #[test]
    fn bad_settings_say_why() {
        for bad in [
            "zen",
            "zen.example=127.0.0",
            "zen.example=127.0.0.[2..]",
            "zen.example*x",
            "zen.example*0",
        ] {
            assert!(Sites::parse(bad, false).is_err(), "{bad}");
        }
        assert!(Sites::parse("", false).unwrap().is_empty());
    }
}
