"""The box on its small internet: the world the network scenarios share.

A scenario that takes mail in over the network and sends some out needs
the same things around the installed suite every time:

* mailroom.conf naming the host and the log file, delivery in the
  background as on a server, and a remote MX that does not answer given
  up on after 3 s (`configure`);
* 192.0.2.10 on lo, the outside client's address (smtpfix.client_address);
* dnsmasq answering the MX records of a few remote domains, each with an
  aiosmtpd sink as its MX host, and whatever other records the scenario
  publishes (netfix);
* openbsd-inetd starting the installed `sendmail -bs` on 127.0.0.1:25 and
  587, and pop3d on 11110 and 11995 when asked, in one configuration as
  an admin's /etc/inetd.conf has them (smtpfix, pop3fix);
* when asked, another machine out on the internet (netfix.OutsideHost),
  with SMTP then served on the box's side of the link too.

They are made here once, so that a scenario says only what is its own:
which remote domains exist, what their MX hosts answer, what else its box
holds.

    sitefix.configure("smtp_auth_fail_delay = 0\\n")
    site = sitefix.Site(self.addCleanup, remotes={"remote.example": "127.0.0.2"})
    ... mail for someone@remote.example ...
    site.sinks["remote.example"].wait_for(1)

Everything runs as root inside the compat sandbox (lib/sandbox.sh).
"""

import mr
import netfix
import pop3fix as pf
import smtpfix as sf

# dnsmasq is authoritative for these: any other name under them is a quick
# NXDOMAIN, the reverse lookups of 192.0.2.10 and 127.0.0.N included.
LOCAL_ZONES = ("example", "test", "invalid", "in-addr.arpa")


def configure(extra=""):
    """Write mailroom.conf as the network scenarios have it; `extra`: the
    scenario's own lines.  Call again to change it mid-scenario (each
    program reads it when it starts)."""
    mr.write_config(f"hostname = {mr.HOST}\nlog = {mr.LOG}\n"
                    "smtp_connect_timeout = 3s\nsmtp_timeout_cap = 3s\n"
                    + mr.NO_SENDER_CHECKS + extra)


class Site:
    """The world around the box, started when made; `cleanup` (a test's
    addCleanup, or addClassCleanup for a world a class shares) gets each
    part's stop, so they end in reverse order.

    remotes:      {domain: address}: the domain's MX is mx.DOMAIN
                  (preference 10) at `address`, where an aiosmtpd sink
                  named mx.DOMAIN listens on port 25.  No remotes and
                  no txt: no dnsmasq (for scenarios where nothing
                  leaves the box).
    sink_options: {domain: keyword arguments of that sink's
                  netfix.SMTPServer}: what it answers (rcpt=, ...).
    shared_mx:    {domain: remote}: more domains whose MX is that remote
                  domain's host.
    mx:           more MX records ({domain: exchange}, preference 10).
    hosts:        more A records, with their PTR ({name: address}).
    txt:          TXT records dnsmasq serves too ({name: text or
                  [texts]}).
    addresses:    A records without PTR ({name: address}; names below
                  each answer too: a blocklist's listings).
    silent_zones: zones whose name server never answers (dnsmasq
                  forwards them to a netfix.SilentDNS on 127.0.0.54).
    pop3:         inetd also starts pop3d (127.0.0.1:11110) and
                  `pop3d --tls` (127.0.0.1:11995).
    tls:          install the server certificate first.
    outside:      start a netfix.OutsideHost: SMTP is then served on
                  OutsideHost.SERVER4 too, where its clients reach the
                  box.

    Handles: `net` (netfix.Network, or None), `dns`, `sinks` ({domain:
    netfix.SMTPServer}), `inetd` (smtpfix.Inetd), `ca` (the CA file
    clients check the certificate with, or None), `outside` (the
    OutsideHost, or None), `silent` (the netfix.SilentDNS, or None),
    `mark` (where the log ended before its servers started: `log()` reads
    from there).
    """

    def __init__(self, cleanup, *, remotes=None, sink_options=None, shared_mx=None, mx=None,
                 hosts=None, txt=None, addresses=None, silent_zones=(), pop3=False, tls=False,
                 outside=False):
        remotes = dict(remotes or {})
        sink_options = dict(sink_options or {})
        shared_mx = dict(shared_mx or {})
        unknown = (set(sink_options) | set(shared_mx.values())) - set(remotes)
        if unknown:
            raise ValueError(f"not among the remotes: {sorted(unknown)}")
        self.ca = sf.install_certificate() if tls else None
        sf.client_address()
        self.mark = mr.log_mark()
        self.net = self.dns = self.outside = self.silent = None
        self.sinks = {}
        if remotes or mx or hosts or txt or addresses or silent_zones:
            self.net = netfix.Network()
            cleanup(self.net.stop_all)
            exchanges = {d: [(10, host)] for d, host in (mx or {}).items()}
            exchanges.update({d: [(10, f"mx.{d}")] for d in remotes})
            for domain, remote in shared_mx.items():
                exchanges[domain] = [(10, f"mx.{remote}")]
            names = dict(hosts or {})
            names.update({f"mx.{d}": a for d, a in remotes.items()})
            forward = {}
            if silent_zones:
                self.silent = self.net.silent_dns()
                forward = {z: self.silent.address for z in silent_zones}
            self.dns = self.net.dns(mx=exchanges, hosts=names, txt=txt, addresses=addresses,
                                    forward=forward, local=LOCAL_ZONES)
            for domain, address in remotes.items():
                self.sinks[domain] = self.net.smtp(address, name=f"mx.{domain}",
                                                   **sink_options.get(domain, {}))
        if outside:
            self.outside = netfix.OutsideHost().start()
            cleanup(self.outside.stop)
        self.inetd = sf.Inetd(extra_lines=pf.inetd_lines() if pop3 else (),
                              addresses=(sf.ADDR, netfix.OutsideHost.SERVER4) if outside else (sf.ADDR,))
        self.inetd.start()
        cleanup(self.inetd.stop)

    def log(self):
        """mailroom's log lines since the site started."""
        return mr.log_since(self.mark)
