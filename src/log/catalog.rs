//! Every line mailroom's programs write to the mail log, with what it
//! means: the one list (module documentation shows examples and points
//! here).  `mailroom-log(5)` is generated from it, and a test scans the
//! source for log calls: a line written with a literal or `format!` text
//! that is not listed here fails it, and so does an entry no code writes.
//!
//! A shape is the line's text after the tag (`sendmail[PID]: `) and the
//! queue id: literal text, `{NAME}` for a variable part, `{?TEXT}` for a
//! part that is there only sometimes.  Lines whose whole text is made
//! elsewhere (an error's own wording) are listed as `{ERROR}`.

use super::Level;

/// Whether a line starts with the message's queue id (`QID: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qid {
    Never,
    Always,
    /// When the line concerns a queued message (the `deliver` command run
    /// without `-Q` has none).
    IfAny,
}

/// One kind of log line.
pub struct Line {
    /// Who writes it: `sendmail` (submission, `mailq`, `newaliases`),
    /// `sendmail -bs` (the SMTP server), `qrun` (the queue runner),
    /// `deliver` (local delivery, in the queue runner or the `deliver`
    /// command), `pop3d`, `mailroom` (the admin command), `panel` (the
    /// web panel's front end).
    pub programs: &'static [&'static str],
    pub qid: Qid,
    pub level: Level,
    pub shape: &'static str,
    pub meaning: &'static str,
}

use Level::{Err, Info, Notice, Warning};
use Qid::{Always, IfAny, Never};

/// Lines every program that reads the sendmail tables may write.
const TABLE_READERS: &[&str] = &[
    "sendmail",
    "sendmail -bs",
    "qrun",
    "deliver",
    "pop3d",
    "mailroom",
];

/// The catalogue, grouped by the first program of each line.
pub const LINES: &[Line] = &[
    // -- sendmail: submission, mailq, newaliases ------------------------
    Line {
        programs: &["sendmail"],
        qid: Always,
        level: Info,
        shape: "from={SENDER}, size={N}, class={N}, nrcpts={N}{?, msgid={MSGID}}{?, bodytype=8BITMIME}, relay={USER}@localhost",
        meaning: "A message from a local program (sendmail -t, PHP's mail(), cron) is safely in the queue: its envelope sender, size in bytes, precedence class, number of recipients, Message-Id, and the submitting user.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Always,
        level: Notice,
        shape: "removed {N} Authentication-Results field(s) claiming to be from {AUTHSERV_ID}",
        meaning: "The message arrived with Authentication-Results fields naming this host (authserv_id), which only this host may write: they were removed (RFC 8601 §5), so a sender cannot forge a pass.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Always,
        level: Info,
        shape: "to={RCPT}, delay=00:00:00, mailer={MAILER}, pri={N}, stat=queued",
        meaning: "One line per recipient of a queued message (over SMTP, RCPT as the client wrote it, in angle brackets); MAILER is local or esmtp.  The queue runner's to= lines tell what became of it.",
    },
    Line {
        programs: &["sendmail"],
        qid: Always,
        level: Info,
        shape: "to={RCPT}, delay=00:00:00, mailer=local, pri=0, dsn={X.Y.Z}, reply={CODE} {X.Y.Z} {TEXT}, stat={TEXT}",
        meaning: "A recipient refused at submission (a virtusertable or aliases error: entry); the sender gets a bounce saying TEXT.",
    },
    Line {
        programs: &["sendmail"],
        qid: Always,
        level: Notice,
        shape: "Authentication-Warning: {WARNING}",
        meaning: "A user who is not trusted (root, daemon, uucp, /etc/mail/trusted-users, trusted_users) set the envelope sender with -f; WARNING is the X-Authentication-Warning: field added to the message, HOST: USER set sender to ADDRESS using -f.",
    },
    Line {
        programs: &["sendmail"],
        qid: Always,
        level: Err,
        shape: "cannot queue the bounce: {ERROR}",
        meaning: "The bounce for recipients refused at submission could not be queued; the sender is not told.  Look at the queue's file system.",
    },
    Line {
        programs: &["sendmail"],
        qid: Always,
        level: Err,
        shape: "cannot build the bounce: {ERROR}",
        meaning: "The bounce for recipients refused at submission could not be composed; the sender is not told.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs", "qrun", "mailroom"],
        qid: Always,
        level: Warning,
        shape: "cannot start {PROGRAM}: {ERROR}; the next queue run delivers it",
        meaning: "The message is queued, but the queue runner could not be started for it; the periodic queue run (timer or cron) delivers it.  Check that qrun is installed set-user-id root, group mqueue, mode 4750.",
    },
    Line {
        programs: &["qrun", "deliver"],
        qid: Never,
        level: Err,
        shape: "cannot return to root's file identity ({ERROR}): stopping",
        meaning: "A delivering thread, which had taken a mailbox owner's file identity to write the mailbox, could not become root again; the process ends at once (SIGABRT) rather than deliver another message as that user.  The message is retried; the crash guard counts it.  This points at a kernel or security-module refusal: see the system log.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Err,
        shape: "express queue run: {ERROR}",
        meaning: "The express run (started by sendmail or the SMTP server for new mail) could not start: its configuration is broken or the queue's new/ directory cannot be opened.  The new mail waits for the periodic queue run; `mailroom check` says what is wrong.",
    },
    Line {
        programs: &["sendmail"],
        qid: Never,
        level: Notice,
        shape: "uid {UID}: {WHAT}",
        meaning: "A user who is not root tried to redirect the set-group-id sendmail (-C, -oQ, -O QueueDirectory=, MAILROOM_ROOT); WHAT says which, `... ignored: only root may redirect the set-group-id sendmail`.  The message still went to the real queue.",
    },
    Line {
        programs: &["sendmail"],
        qid: Never,
        level: Info,
        shape: "alias database {FILE} rebuilt by {USER}",
        meaning: "newaliases (sendmail -bi) compiled the aliases file into its index.",
    },
    Line {
        programs: &["sendmail"],
        qid: Never,
        level: Info,
        shape: "{FILE}: {N} aliases, longest {N} bytes, {N} bytes total",
        meaning: "newaliases' summary, as sendmail 8 prints it.",
    },
    // -- sendmail -bs: the SMTP server -------------------------------
    Line {
        programs: &["sendmail -bs"],
        qid: Always,
        level: Info,
        shape: "from={SENDER}, size={N}, class={N}, nrcpts={N}{?, msgid={MSGID}}{?, bodytype=8BITMIME}, proto={PROTO}, relay={RELAY}{?, auth={LOGIN}}",
        meaning: "A message received over SMTP is safely in the queue (the 250 after DATA went out after this).  PROTO is SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA (RFC 3848); RELAY the client's HELO name and [address], or USER@localhost on a pipe; LOGIN the AUTH login.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Always,
        level: Info,
        shape: "from=<{SENDER}>, size={N}, nrcpts={N}: discarded (access DISCARD)",
        meaning: "An access DISCARD entry matched: the client was told the message was accepted, and it was dropped.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "ruleset=check_relay, arg1={[IP]}, relay={[IP]}, reject={REPLY} (access {KEY} line {N})",
        meaning: "A client refused at connection by a Connect: entry of /etc/mail/access (the key and line named).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "ruleset=check_mail, arg1=<{SENDER}>, relay={RELAY}, reject={REPLY}",
        meaning: "MAIL FROM refused (an access From: entry, a malformed address, an SPF fail or a DNS failure while checking SPF): the reply sent, as sendmail 8 logs it.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "ruleset=check_rcpt, arg1=<{RCPT}>, relay={RELAY}, reject={REPLY}",
        meaning: "RCPT TO refused: an unknown user (550 5.1.1), relaying denied (550 5.7.1), a full mailbox (452 4.2.2), a list that only members may post to, an access To: entry.  REPLY is what the client was told.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "relay={RELAY}: relaying to <{RCPT}> allowed: {WHY}",
        meaning: "Mail for another domain accepted from this client, and why: authenticated as LOGIN, loopback client, access Connect:... RELAY, POP before SMTP, or access To: RELAY.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "from=<{SENDER}>, relay={RELAY}: message refused: {REPLY}",
        meaning: "The message was refused after DATA (too big, refused by policy, a DMARC reject policy, a forged From: of this box's own domain, a DNS failure while checking DMARC); nothing was queued.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "relay={RELAY}: {REPLY}; nothing queued",
        meaning: "The connection was closed during DATA with the 421 REPLY (a bare LF or CR, a timeout); nothing was queued.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "collect: premature EOM: unexpected close from {RELAY}",
        meaning: "The client went away in the middle of DATA; nothing was queued (sendmail 8's wording).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "timeout waiting for input from {RELAY}",
        meaning: "The client said nothing for smtp_timeout; it got 421 and the connection was closed.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "{RELAY}: too many errors, closing",
        meaning: "smtp_max_errors commands failed in one connection; it got 421 and was closed.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "rejecting commands from {RELAY} due to pre-greeting traffic after {SECONDS} seconds",
        meaning: "The client talked before the greeting (smtp_greet_pause), as spam software does; every command is refused (554, then 550).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "rejecting connection from {[IP]}: {N} connections already",
        meaning: "The address already holds smtp_max_connections_per_ip connections; this one got 421.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "rejecting connection from {[IP]}: listed by {ZONES} (weight {N} of {N}): {TEXT}",
        meaning: "The client is on the DNS blocklists named (dnsbl), their weights adding up to dnsbl_threshold or more: it got 554 5.7.1 with the list's own text in place of the greeting.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "dnsbl: {ZONE} gave no answer for {[IP]}: {WHY}",
        meaning: "A blocklist did not answer in time (dns_timeout, inbound_check_time); the client counts as not listed there.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Warning,
        shape: "dnsbl: {ZONE} answered {CODES} for {[IP]}: an error code, not a listing (is the resolver a public one?)",
        meaning: "A blocklist answered one of its error codes (127.255.255.x: queries through an open or public resolver, or too many): never counted as a listing. Use a resolver of your own (README: Checking senders).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "sender checks: {ERROR}",
        meaning: "The resolver for the sender checks could not be set up (no /etc/resolv.conf?): mail from the internet gets 451 4.7.0 until it can (or is accepted unchecked with dns_failure = accept).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Always,
        level: Info,
        shape: "quarantined: {WHY}; delivered to the Spam folder",
        meaning: "The sender checks accepted the message for the Spam folder (a DMARC quarantine policy, or own_domain_forgery = quarantine); its Authentication-Results says policy.dmarc=quarantine.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "AUTH=server, relay={RELAY}, authid={LOGIN}, mech={MECH}, bits=0",
        meaning: "A client logged in with SMTP AUTH (as sendmail 8 logs it); its mail may go anywhere.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Notice,
        shape: "AUTH failure ({MECH}): authentication failure, relay={RELAY}",
        meaning: "A wrong login or password in SMTP AUTH (the login is not logged); after smtp_max_auth_failures the connection is closed.  fail2ban's sendmail-auth filter reads this line.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "AUTH: {LOGIN} from {[IP]}",
        meaning: "The server's root side checked an AUTH password and found it right.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "STARTTLS from {RELAY}: handshake failed: {ERROR}",
        meaning: "A client asked for STARTTLS and the TLS handshake failed (a client that does not accept the certificate, a scanner); the connection is closed.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "implicit TLS (port {PORT}) needs {CERT} and {KEY}: connection from {[IP]} closed",
        meaning: "A connection to port 465 (sendmail -bs --tls) while the certificate or its key is missing: closed unanswered, never spoken to in plain text.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Info,
        shape: "TLS handshake with {RELAY} failed: {ERROR}",
        meaning: "A client on port 465 did not complete the TLS handshake (a plain-text client, a port scanner, or a client that trusts no certificate we offer).",
    },
    Line {
        programs: &["sendmail -bs", "pop3d"],
        qid: Never,
        level: Warning,
        shape: "{FILE}: ignored: {ERROR}",
        meaning: "A POP-before-SMTP stamp file under /var/spool/mailroom is not root's and private, or unreadable: no address relays by it until it is fixed (or removed: pop3d writes it again at the next login).",
    },
    Line {
        programs: &["sendmail -bs", "pop3d"],
        qid: Never,
        level: Err,
        shape: "cannot drop privileges: {ERROR}",
        meaning: "The server could not become its unprivileged user (smtp_user, pop3_user) or shut itself in; the connection is refused.  Check that the user exists.",
    },
    Line {
        programs: &["sendmail -bs", "pop3d", "qrun"],
        qid: Never,
        level: Err,
        shape: "{ERROR}",
        meaning: "A failure stated in full, worded as the program's error messages (what failed: why; what to do): a bad mailroom.conf value (file and line named), a queue that cannot be written, no resolver.  Servers log it instead of writing to the client's socket.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: IfAny,
        level: Err,
        shape: "{ERROR}",
        meaning: "The SMTP server could not write a message to the queue (the client got 451 or 452), stated in full; with the message's QID when one was already made.",
    },
    Line {
        programs: &["sendmail -bs", "qrun"],
        qid: Always,
        level: Err,
        shape: "{ERROR}",
        meaning: "A failure concerning message QID stated in full: the SMTP server could not queue it (the client got 451 or 452), or the queue runner cannot sign it (a DKIM key it cannot read: the remote recipients stay queued).",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Never,
        level: Warning,
        shape: "{ERROR}",
        meaning: "The queue's file system has less free space than min_free_space: messages get 452 4.3.1 until there is room.",
    },
    // -- qrun: the queue runner -------------------------------------------
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "to={RCPTS}, delay={DELAY}, xdelay={XDELAY}, mailer=esmtp, pri={N}{?, relay={HOST} [{IP}]}, dsn={X.Y.Z}, stat={STATUS}",
        meaning: "One delivery attempt to a remote server for the recipients listed (one line per outcome): DELAY since submission, XDELAY this attempt, dsn 2.x.x stat=Sent (the server's reply), 4.x.x stat=Deferred: why (retried later), 5.x.x the refusal (bounced).",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "to={RCPT}, delay={DELAY}, xdelay={XDELAY}, mailer=local, pri={N}, dsn={X.Y.Z}, stat={STATUS}",
        meaning: "One local delivery (mailbox, folder, program, file): stat=Sent, Deferred (4.x.x: retried), or the reason it bounced.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "to={RCPT}, delay={DELAY}, pri={N}, dsn=4.4.7, stat=Timeout: could not deliver for {PERIOD}",
        meaning: "The recipient was still undelivered after queue_return: it is bounced.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "done",
        meaning: "Every recipient is delivered or bounced; the job is removed from the queue.",
    },
    Line {
        programs: &["qrun", "sendmail"],
        qid: Always,
        level: Info,
        shape: "{NEWQID}: DSN: {REASON}",
        meaning: "A delivery status notification about message QID was queued as NEWQID: a bounce (the reason), a delay warning (Warning: could not send message for past ...) or a return receipt.",
    },
    Line {
        programs: &["qrun", "sendmail", "sendmail -bs", "mailroom"],
        qid: Always,
        level: Info,
        shape: "from={SENDER}, size={N}, class={N}, nrcpts={N}{?, msgid={MSGID}}{?, bodytype=8BITMIME}, relay={RELAY}",
        meaning: "A message made by mailroom itself (a bounce, a warning, an autoreply) was queued.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Warning,
        shape: "DSN to {ADDRESS} suppressed: rate limit reached",
        meaning: "dsn_rate_per_sender or dsn_rate_total was reached: this bounce or warning is not sent (a storm is never sent).",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Notice,
        shape: "double bounce: notification to the postmaster undeliverable; dropped",
        meaning: "A bounce that could not be delivered went to double_bounce_address, and that failed too: dropped.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot queue the DSN: {ERROR}",
        meaning: "A bounce or warning could not be queued (disk full?); it is tried again at the next attempt.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot build the DSN: {ERROR}",
        meaning: "A bounce or warning could not be composed.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "split from {N}: sender {SENDER}",
        meaning: "Recipients whose mail must go out with another envelope sender (a list's owner-NAME) were moved to this new job, from a message with N recipients.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot split the envelope: {ERROR}",
        meaning: "The recipients needing another envelope sender could not be moved to a job of their own; the message is retried.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot lock: {ERROR}",
        meaning: "The job could not be locked; it is left for the next run.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "data file unreadable: {ERROR}",
        meaning: "The message's df file cannot be read; when it is missing the job is set aside (QfID).",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "Losing {QFILE}: {WHY}",
        meaning: "The control file is not in a format the runner can read: it is set aside as QfID (sendmail 8 does the same) for the admin to look at; `mailroom queue release ID` puts it back.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "Losing {QFILE}: delivery attempts died {N} times; set aside for the admin",
        meaning: "Delivering this message crashed the runner three times: it is set aside (QfID) instead of crashing every run; `mailroom queue release ID` puts it back.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot set aside: {ERROR}",
        meaning: "A job that should be set aside could not be renamed; it stays where it is.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Warning,
        shape: "the queue runner crashed while delivering this message",
        meaning: "A runner died of a fatal signal or a panic with this message in hand; it counts toward setting the message aside.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Notice,
        shape: "a queue runner was killed while delivering this message; retrying",
        meaning: "A runner was killed from outside (kill -9, the OOM killer) with this message in hand: the retry first looks for a copy it may have delivered, so nothing arrives twice.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "the queue runner failed on this message; it will be retried",
        meaning: "An unexpected failure while delivering; the message stays queued.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot rewrite the control file: {ERROR}",
        meaning: "The outcome of an attempt could not be recorded (disk full, read-only); the recipients will be tried again.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot remove the finished job: {ERROR}",
        meaning: "Everything was delivered but the job's files could not be removed.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Err,
        shape: "queue {DIR} is on a read-only file system: no delivery attempted, none could be recorded",
        meaning: "Nothing is delivered while the queue cannot be written, so that nothing is delivered twice.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Err,
        shape: "cannot read the queue {DIR}: {ERROR}",
        meaning: "The queue directory cannot be listed; nothing was delivered.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Warning,
        shape: "no crash journal ({ERROR}): a message that kills the runner will be retried",
        meaning: "The runner's crash journal cannot be opened: a message that crashes it is not set aside after three crashes.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Notice,
        shape: "removed stale queue file {FILE}",
        meaning: "A file left by a killed submission (a locked tf older than two seconds, a lone df older than a day) was removed.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Err,
        shape: "stale file sweep: {ERROR}",
        meaning: "The sweep for files left by killed programs failed.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Warning,
        shape: "cannot limit the runner's memory: {ERROR}",
        meaning: "runner_memory_limit could not be applied.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Notice,
        shape: "STARTTLS with {HOST} failed ({ERROR}); delivering without TLS",
        meaning: "With smtp_tls = may, a server whose TLS handshake fails gets the message in plain text, as other MTAs do.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Warning,
        shape: "no smarthost credentials configured; sending to {HOST} without AUTH",
        meaning: "The smarthost offers AUTH but smarthost_auth names no readable login file.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Warning,
        shape: "{FILE}:{LINE}: {VALUE} is not an IP address; ignored",
        meaning: "A line of /etc/mail/source-addresses does not give an address: mail from that domain leaves from the default address.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "{NEWQID}: autoreply from {ADDRESS} to {SENDER}",
        meaning: "An autoreply (mailroom autoreply) was queued as NEWQID.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "autoreply from {ADDRESS}: none ({WHY})",
        meaning: "No autoreply, for one of RFC 3834's reasons: a list, bulk or automatic message, the null sender, mail not addressed to the address...",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "autoreply from {ADDRESS}: none ({SENDER} answered within the interval)",
        meaning: "This sender already got an autoreply within the rule's interval.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Warning,
        shape: "autoreply to {SENDER} suppressed: rate limit reached",
        meaning: "The DSN rate limits also cap autoreplies; this one is not sent.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Warning,
        shape: "autoreply: {ERROR}",
        meaning: "An autoreply rule in /etc/mail/autoreply cannot be read; no reply is sent (the message is delivered).",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "autoreply from {ADDRESS}: {ERROR}",
        meaning: "The record of who was answered (/var/spool/mailroom/autoreply) cannot be used; no reply is sent.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Err,
        shape: "cannot queue the autoreply: {ERROR}",
        meaning: "An autoreply could not be queued.",
    },
    Line {
        programs: &["mailroom"],
        qid: Always,
        level: Notice,
        shape: "removed from the queue: {WHY}",
        meaning: "mailroom queue delete removed the message (with --bounce, after bouncing it to its sender).",
    },
    // -- deliver: local delivery -------------------------------------------
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "{NEWQID}: quota warning to {ADDRESS}: {N}% full ({SIZE} of {SIZE})",
        meaning: "A delivery took the mailbox past a threshold of its quota (quota_warn): its owner's warning was queued as NEWQID, from postmaster with the null sender, and is delivered next.  One per crossing: the next is sent at a higher threshold, or after the mailbox has been seen back below.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Err,
        shape: "cannot queue the quota warning to {ADDRESS}: {ERROR}",
        meaning: "The quota warning could not be queued (the message itself is delivered); the next delivery to the mailbox tries again.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Warning,
        shape: "quota warnings: {FILE}: {ERROR}",
        meaning: "The mailbox's size, or the record of its warnings under /var/spool/mailroom/quota-warnings, cannot be read or written: no warning this time (the message itself is delivered).",
    },
    Line {
        programs: &["deliver"],
        qid: Never,
        level: Warning,
        shape: "quota warnings: {FILE}: ignored: {ERROR}",
        meaning: "A mailbox's record of quota warnings is damaged or unreadable: it counts as none, so its owner may be warned once more.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "to={RCPT}, delay={DELAY}, xdelay={XDELAY}, mailer=local, dsn={X.Y.Z}, stat={STATUS}",
        meaning: "The deliver command's outcome for one recipient (the queue runner logs its own to= line instead).",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "filter: {ADDRESS}: into folder {FOLDER} by {RULE}{?, spam score {SCORE}}{?, DMARC quarantine for {DOMAIN}}",
        meaning: "A filter rule (FILE:LINE, the built-in spam rule, or the built-in DMARC rule) filed the message into a folder.  DMARC quarantine: this host's Authentication-Results field says the SMTP server quarantined the message (dmarc=fail, policy.dmarc=quarantine; DOMAIN is its From: domain), which the DMARC rule files into spam_folder unless a later rule moves it.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "filter: {ADDRESS}: rejected by {RULE}{?, spam score {SCORE}}{?, DMARC quarantine for {DOMAIN}}",
        meaning: "A reject rule bounced the message (5.7.1) with its text.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "filter: {ADDRESS}: {WHAT}{?, spam score {SCORE}}{?, DMARC quarantine for {DOMAIN}}",
        meaning: "A rule kept no copy here: WHAT is `discarded by RULE` (a discard rule, or the spam rule over spam_discard_score) or `not kept, forwarded by RULE`.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Warning,
        shape: "filter: {ERROR}; rules not applied, delivered to the inbox of {ADDRESS}",
        meaning: "A rule file does not parse (FILE:LINE: what is wrong): no rule is applied and the message goes to the inbox; fix the file (mailroom check finds it).",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Warning,
        shape: "filter: {FILE}: ignored ({WHY})",
        meaning: "A rule file is not owned by its user (or root), is writable by others, or cannot be read: it is not used.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Warning,
        shape: "spamc: {ERROR}; delivering to {ADDRESS} unscanned",
        meaning: "spamc failed or took longer than spamc_timeout: the message is delivered without a spam score.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Info,
        shape: "{ADDRESS}: accepted by {LMTP} in an earlier attempt; not sent again",
        meaning: "The job's LMTP reply journal says the server already took this mailbox's copy (an attempt killed or cut before the queue file was rewritten): it counts as delivered.",
    },
    Line {
        programs: &["deliver"],
        qid: IfAny,
        level: Err,
        shape: "{ADDRESS}: delivered, but the reply journal cannot be written ({ERROR}): a crash now would send it again",
        meaning: "The LMTP server took the copy but its record in the queue (lfID) failed (disk full?): if the runner dies before the queue file is rewritten, that mailbox gets the message twice.",
    },
    Line {
        programs: &["deliver", "sendmail", "mailroom"],
        qid: Never,
        level: Warning,
        shape: "forward: {FILE}: unsafe, ignored",
        meaning: "A ~/.forward not owned by its user, or writable by others, is not followed: mail stays in the user's mailbox.",
    },
    Line {
        programs: &["deliver"],
        qid: Never,
        level: Notice,
        shape: "{MAILBOX}: already holds {ID} from an interrupted attempt",
        meaning: "A retry after a killed delivery found the copy the dead attempt had written: it is not written again.",
    },
    Line {
        programs: &["deliver", "pop3d"],
        qid: Never,
        level: Notice,
        shape: "{MAILBOX}: {REPAIR}",
        meaning: "Whoever took the mbox next finished what a killed program left half done: a half-written message cut off, or a POP3 compaction completed from where it stopped. \"did not finish the compaction\" means its side file held no whole plan, or the mailbox had changed since (another program wrote it): the mailbox is left as it is.",
    },
    Line {
        programs: &["deliver", "pop3d"],
        qid: Never,
        level: Notice,
        shape: "removed stale lock {FILE}",
        meaning: "A dotlock left by a dead process (its pid is gone, or it is old and empty) was broken.",
    },
    // -- pop3d ------------------------------------------------------------
    // -- panel-helper (the web panel's root side) -------------------------
    Line {
        programs: &["panel-helper"],
        qid: Never,
        level: Info,
        shape: "login: {LOGIN} from {ADDRESS} (panel)",
        meaning: "A login to the web panel: LOGIN is the account, ADDRESS the browser's as the web server saw it.  A new session (and a new token) starts.",
    },
    Line {
        programs: &["panel-helper"],
        qid: Never,
        level: Notice,
        shape: "login failed: {LOGIN} from {ADDRESS} (panel)",
        meaning: "A wrong password given to the web panel (or to its password change); LOGIN is `unknown user` when no such account exists (the name tried is not logged).  The answer comes after pop3_auth_fail_delay, doubling with each failure of that name within 15 minutes, at most 32 times.",
    },
    Line {
        programs: &["panel-helper"],
        qid: Never,
        level: Info,
        shape: "logout: {LOGIN} from {ADDRESS} (panel)",
        meaning: "A web panel session was ended by its user.",
    },
    Line {
        programs: &["panel-helper"],
        qid: Never,
        level: Notice,
        shape: "change by {LOGIN} from {ADDRESS}: {OP} {OBJECT}: {OUTCOME}",
        meaning: "A change asked for in the web panel, and how it ended: `done`, `refused (missing)` (the session may not touch OBJECT, or it does not exist), `refused (no CSRF token of the session)`, `refused (stale: changed since shown)` (someone changed it since the page showed it), `failed: ` and the mailroom command's own message.",
    },
    Line {
        programs: &["panel-helper"],
        qid: Never,
        level: Err,
        shape: "uid {UID} may not run panel-helper (panel_callers)",
        meaning: "Someone other than root and the users of panel_callers ran the set-uid program: refused (exit 2) before any file was read.",
    },
    // -- checkpassword (Dovecot's login check) ---------------------------
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Info,
        shape: "login: {LOGIN} from {ADDRESS} ({SERVICE})",
        meaning: "Dovecot asked, and the password was right: LOGIN is the account, ADDRESS the client's (unknown when Dovecot did not say), SERVICE Dovecot's protocol (imap, pop3, ...).",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Notice,
        shape: "login failed: {LOGIN} from {ADDRESS} ({SERVICE})",
        meaning: "A wrong password given to Dovecot; LOGIN is `unknown user` when no such account exists (the name tried is not logged).  The answer comes after pop3_auth_fail_delay; Dovecot adds its own auth_failure_delay.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Notice,
        shape: "credentials lookup refused ({SERVICE}): only plaintext logins are checked",
        meaning: "Dovecot asked for a password itself (a CRAM-MD5 or DIGEST-MD5 login): the door never hands out secrets.  Offer only auth_mechanisms = plain login.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "uid {UID} may not run checkpassword (checkpassword_callers)",
        meaning: "Someone other than root and the users of checkpassword_callers ran the set-uid program: refused (exit 2) before any account file was read.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "not a checkpassword request on descriptor 3 (LOGIN NUL PASSWORD NUL TIMESTAMP NUL, at most 512 bytes)",
        meaning: "The program was started without the request Dovecot writes: exit 2.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "cannot read the settings: {ERROR}",
        meaning: "A bad value in mailroom.conf (file and line named): every login gets a temporary failure until it is fixed.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "{LOGIN}: not said to Dovecot: {ERROR}",
        meaning: "The account's mailbox path holds a character Dovecot's mail location cannot carry (':', '%', a tab): a temporary failure; move the mailbox.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "cannot give up root before the reply program: {ERROR}",
        meaning: "Setting the ids back to the caller's failed: nothing is run, a temporary failure.",
    },
    Line {
        programs: &["checkpassword"],
        qid: Never,
        level: Err,
        shape: "cannot run {PROGRAM}: {ERROR}",
        meaning: "The reply program Dovecot named (checkpassword-reply) could not be started: a temporary failure.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "connect from {ADDRESS}",
        meaning: "A POP3 connection (ADDRESS is unknown when stdin is not a socket).",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "login: {LOGIN} from {ADDRESS}",
        meaning: "A successful login; with pop_before_smtp_window, ADDRESS may relay mail for that long.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Notice,
        shape: "login failed: {LOGIN} from {ADDRESS}",
        meaning: "A wrong password; LOGIN is `unknown user` when no such account exists (the name tried is not logged).  The client waits pop3_auth_fail_delay, doubling; after pop3_max_auth_failures the connection is closed.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Notice,
        shape: "login refused: {LOGIN} from {ADDRESS}: LOGIN-DELAY",
        meaning: "The account logged in less than pop3_login_delay ago.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "logout: {LOGIN} retr={N}/{BYTES} top={N} del={N}/{BYTES} left={N}/{BYTES} ({HOW})",
        meaning: "The session's end: messages retrieved, headers read, deleted and left (count/bytes); HOW is quit (deletions done), or why the session ended without QUIT (nothing deleted).",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "{LOGIN}: mailbox in use by another session",
        meaning: "A second session for the same mailbox got [IN-USE].",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Warning,
        shape: "{LOGIN}: {ERROR}",
        meaning: "The mailbox could not be opened for now ([SYS/TEMP]); the client may try again.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "{LOGIN}: {ERROR}",
        meaning: "The mailbox cannot be opened ([SYS/PERM]): its owner, mode or format is wrong.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Warning,
        shape: "pop3 session ended: {ERROR}",
        meaning: "Another program rewrote the mailbox during the session; the client is asked to reconnect and nothing is deleted.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Warning,
        shape: "pop3 QUIT: {ERROR}",
        meaning: "The deletions could not be applied at QUIT ([SYS/TEMP]); the messages are still there.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Warning,
        shape: "cannot record the login for POP-before-SMTP: {ERROR}",
        meaning: "/var/spool/mailroom/pop-before-smtp cannot be written: this login does not open relaying.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "TLS handshake failed: {ERROR}",
        meaning: "A client on port 995 (pop3d --tls) failed the TLS handshake.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Info,
        shape: "STLS handshake failed: {ERROR}",
        meaning: "A client's STLS handshake failed; the connection is closed.",
    },
    Line {
        programs: &["pop3d", "sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "TLS is off: {ERROR}",
        meaning: "tls_cert and tls_key exist but cannot be used: pop3d offers no STLS and port 995 refuses connections; the SMTP server offers no STARTTLS (nor AUTH from the network) and port 465 closes connections; until they are fixed.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "--tls needs {CERT} and {KEY}",
        meaning: "pop3d --tls (port 995) was started without a certificate: install tls_cert and tls_key.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "unknown argument {ARG}; usage: pop3d [--tls] [-C config]",
        meaning: "The inetd line or socket unit passes a wrong argument.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "cannot become {USER}: {ERROR}",
        meaning: "After login the session could not switch to the mailbox's owner; the client gets [SYS/TEMP].",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "socketpair: {ERROR}",
        meaning: "pop3d could not set up its privilege separation; the connection is dropped.",
    },
    Line {
        programs: &["pop3d"],
        qid: Never,
        level: Err,
        shape: "fork: {ERROR}",
        meaning: "pop3d could not fork its network process; the connection is dropped.",
    },
    Line {
        programs: &["pop3d", "sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "cannot load libcrypt: no password can be checked",
        meaning: "The system's crypt() library is missing: every login fails until it is installed (libcrypt1).",
    },
    // -- mailroom: the admin command --------------------------------------
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: mailbox {ADDRESS} added: user {USER}, uid {UID}",
        meaning: "mailroom mailbox add (or import) made a system user for the mailbox.",
    },
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: virtual mailbox {ADDRESS} added",
        meaning: "mailroom mailbox add --virtual made an account in /etc/mail/passwd.",
    },
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: mailbox {ADDRESS} removed ({WHAT})",
        meaning: "mailroom mailbox remove; WHAT says what was removed.",
    },
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: password of {ADDRESS} changed ({WHERE})",
        meaning: "mailroom mailbox passwd; it applies from the next login.",
    },
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: quota of {ADDRESS} set to {SIZE} ({KEY})",
        meaning: "mailroom mailbox quota.",
    },
    Line {
        programs: &["mailroom"],
        qid: Never,
        level: Info,
        shape: "mailroom: setup {COMMAND}: {SERVICE} port {PORT}: {WHAT}",
        meaning: "mailroom setup services (or setup panel, for the web panel's port 8443) turned a service on or off: an inetd line added or removed, a socket unit enabled or disabled.",
    },
    Line {
        programs: &["mailroom", "panel-helper"],
        qid: Never,
        level: Info,
        shape: "mailroom: imported {FILE}: {COUNTS}",
        meaning: "mailroom import applied a file: how many domains, mailboxes, aliases... it added.",
    },
    // -- every program that reads the sendmail tables ----------------------
    Line {
        programs: TABLE_READERS,
        qid: Never,
        level: Info,
        shape: "{FILE}: index rebuilt ({N} entries)",
        meaning: "A table (aliases, virtusertable, mailertable, access...) newer than its .mrdb index was compiled again by a program allowed to write it.",
    },
    Line {
        programs: TABLE_READERS,
        qid: Never,
        level: Warning,
        shape: "{FILE}: cannot rebuild the index: {ERROR}",
        meaning: "The index could not be written; the text file is read instead (slower, never stale).",
    },
    Line {
        programs: TABLE_READERS,
        qid: Never,
        level: Notice,
        shape: "{FILE}: index {INDEX} is missing or older than the text; reading the text file",
        meaning: "The table was edited since its index was built: run newaliases (which compiles every table) to make lookups fast again.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Always,
        level: Notice,
        shape: "held: {LIMIT}",
        meaning: "A local program's message went over an outbound limit; LIMIT names the sender and the limit (user www-data over 200 messages/hour; the sender is a user, login, domain or client): accepted, queued held, not sent.  mailroom queue summary shows the senders; mailroom queue release --held or delete --held clears them.",
    },
    Line {
        programs: &["sendmail -bs"],
        qid: Always,
        level: Notice,
        shape: "refused: {LIMIT}",
        meaning: "An SMTP client's message (an AUTH login, a relayed client) went over an outbound limit: the client got 451 4.7.0 naming the limit and keeps the message to try later.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Always,
        level: Info,
        shape: "{ALERTQID}: limit alert to {ADDRESS}: {LIMIT}",
        meaning: "The first hold or refusal of a sender in an hour: an alert naming the sender, the limit, the script or client and the clean-up commands was queued for limit_alert (postmaster by default).",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Always,
        level: Err,
        shape: "cannot queue the limit alert: {ERROR}",
        meaning: "The alert about a sender over a limit could not be queued (the hold or refusal itself stands and is logged).",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "limits not applied: {ERROR}",
        meaning: "A limit_* setting in mailroom.conf is wrong (file and line named): mail is accepted uncounted until it is fixed; mailroom check says the same.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Warning,
        shape: "/etc/mail/limits: {KEY}: {WHY}; the defaults apply",
        meaning: "An entry of the limits table cannot be read as a limit: the mailroom.conf default applies to that sender.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "cannot count outbound mail in {DIR}: {ERROR}; the message is not limited",
        meaning: "The counters under /var/spool/mailroom/limits cannot be opened or locked: mail goes on uncounted (never refused for it).  Check the directory: root:mqueue, mode 2770.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Err,
        shape: "cannot count {KEY}: {ERROR}",
        meaning: "One sender's counter could not be read or written: that sender's message goes on uncounted.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Warning,
        shape: "{FILE}: not a counters file of this version; counting starts anew",
        meaning: "The limits counters file has another layout (an older version, or damage): it is started afresh, so every sender's count starts at zero.",
    },
    Line {
        programs: &["sendmail", "sendmail -bs"],
        qid: Never,
        level: Warning,
        shape: "{FILE}: record {N} damaged (a crash or power cut while it was written); it starts anew",
        meaning: "One counter's checksum did not match (torn by a crash): that sender's count starts at zero; no one else's is touched.",
    },
    Line {
        programs: &["qrun"],
        qid: Never,
        level: Warning,
        shape: "/etc/mail/limits: To:{DOMAIN}: {WHY}; the default applies",
        meaning: "A To: pacing entry of the limits table cannot be read: destination_rate applies to that domain.",
    },
    Line {
        programs: &["qrun"],
        qid: Always,
        level: Info,
        shape: "{STATUS}; left for the next queue run",
        meaning: "Every pending recipient of the message waits for its destination's pace (destination_rate, To: in /etc/mail/limits): not an attempt, not counted as one; a later queue run sends it.",
    },
    Line {
        programs: &["mailroom"],
        qid: Never,
        level: Warning,
        shape: "cannot start {PROGRAM}: {ERROR}; the next queue run delivers the mail",
        meaning: "mailroom queue release or retry could not start a queue run: the released mail waits for the periodic queue run.",
    },
    // -- panel: the web panel's front end (CGI, or its own port) ----------
    Line {
        programs: &["panel"],
        qid: Never,
        level: Err,
        shape: "unknown argument {ARG}; usage: panel [--inetd] [-C config]",
        meaning: "The inetd line or socket unit of the panel's own port passes a wrong argument.",
    },
    Line {
        programs: &["panel"],
        qid: Never,
        level: Err,
        shape: "panel --inetd not started: {ERROR}",
        meaning: "The panel's own port could not start: mailroom.conf cannot be read or has a bad value (stated in full); the connection is closed unanswered.",
    },
    Line {
        programs: &["panel"],
        qid: Never,
        level: Err,
        shape: "panel --inetd needs {CERT} and {KEY}",
        meaning: "The panel's own port was connected to without a certificate: install tls_cert and tls_key; the connection is closed unanswered.",
    },
    Line {
        programs: &["panel"],
        qid: Never,
        level: Err,
        shape: "cannot become panel_user {USER}: {ERROR}",
        meaning: "panel --inetd read the certificate as root but could not switch to panel_user (no such user?): the connection is closed, nothing is served as root.",
    },
    Line {
        programs: &["panel"],
        qid: Never,
        level: Info,
        shape: "TLS handshake from {IP} failed: {ERROR}",
        meaning: "A client of the panel's own port did not complete the TLS handshake (plain HTTP to the https port, a scanner, a browser that trusts no certificate we offer).",
    },
    Line {
        programs: &["panel"],
        qid: Never,
        level: Err,
        shape: "no answer from the helper: {ERROR}",
        meaning: "The panel could not run panel-helper, it took longer than 30 s, or it printed something that is not an answer: the browser gets a 502 page saying the panel is not available.",
    },
];
/// The pieces of a shape: literal text, a `{NAME}`, or a `{?...}` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(String),
    Optional(Vec<Piece>),
}

/// Split a catalogue shape into its pieces.
pub fn pieces(shape: &str) -> Vec<Piece> {
    fn parse(chars: &[char], i: &mut usize, nested: bool) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut text = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            if c == '}' && nested {
                *i += 1;
                break;
            }
            if c == '{' {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                *i += 1;
                if chars.get(*i) == Some(&'?') {
                    *i += 1;
                    out.push(Piece::Optional(parse(chars, i, true)));
                } else {
                    let mut name = String::new();
                    while *i < chars.len() && chars[*i] != '}' {
                        name.push(chars[*i]);
                        *i += 1;
                    }
                    *i += 1;
                    out.push(Piece::Var(name));
                }
                continue;
            }
            text.push(c);
            *i += 1;
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        out
    }
    let chars: Vec<char> = shape.chars().collect();
    parse(&chars, &mut 0, false)
}

#[cfg(test)]
mod tests;
