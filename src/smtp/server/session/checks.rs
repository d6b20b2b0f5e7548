//! The sender checks in the dialogue ([`crate::inbound`]): the blocklists
//! after the greet pause, SPF at `MAIL`, DKIM and DMARC on the message
//! (through [`super::accept::queue_message`]'s judge).  Only for mail
//! from the internet: a network client on the MX role that has not
//! logged in and may not relay.

use super::{Client, Policy, Session};
use crate::inbound::{Gate, Judgement, SpfCheck};

impl Session<'_> {
    /// Are this client's messages checked?
    pub(super) fn checks_apply(&self) -> bool {
        self.gate.is_some()
            && matches!(
                self.client,
                Client::Network {
                    submission: false,
                    ..
                }
            )
            && !self.may_relay()
    }

    /// The blocklists, once the greet pause is over: true when the client
    /// was refused service (`554 5.7.1` in place of the greeting).
    pub(super) fn refused_at_connect(&mut self) -> bool {
        if !self.checks_apply() {
            return false;
        }
        let Client::Network { ip, .. } = self.client else {
            return false;
        };
        let shown = self.relay_name();
        let Some(reply) = self.gate.as_ref().and_then(|g| g.at_connect(ip, &shown)) else {
            return false;
        };
        self.send(&reply);
        self.service_refused = true;
        true
    }

    /// SPF for this `MAIL`: None when it was refused (the reply is sent).
    pub(super) fn check_sender_spf(&mut self, sender: &str) -> Option<Option<SpfCheck>> {
        if !self.checks_apply() {
            return Some(None);
        }
        let Client::Network { ip, .. } = self.client else {
            return Some(None);
        };
        let helo = self.helo.clone().unwrap_or_default();
        let gate = self.gate.as_ref()?;
        match gate.at_mail(ip, &helo, sender) {
            Ok(spf) => Some(Some(spf)),
            Err(r) => {
                if r.is_permanent() {
                    self.errors += 1;
                }
                self.send(&r);
                None
            }
        }
    }
}

/// The judge of one message, for [`super::accept::queue_message`].
pub(super) fn judge<'s>(
    gate: &'s Gate,
    policy: &'s Policy,
    spf: &'s SpfCheck,
) -> impl Fn(&[u8]) -> Judgement + 's {
    move |raw| {
        let resolver = &policy.resolver;
        gate.at_data(raw, spf, &|d: &str| {
            resolver.is_local_domain(d) || resolver.is_virtual_domain(d)
        })
    }
}
