"""Mail that `deliver` puts into mailboxes is read back by the programs
users actually read it with — Python's mailbox module, Dovecot, mutt — and
`deliver` runs every program and writes every file as the right user.

Runs as root in the sandbox, with mailroom installed by `make install`
(deliver in /usr/libexec/mailroom).  Dovecot (dovecot-core), mutt + tmux
and dotlockfile (liblockfile-bin) are used when installed and skipped
otherwise.

Readers that never undo mboxrd quoting (Python's mailbox, Dovecot, mutt)
show one more `>` on `>*From ` body lines than the message had: bodies are
compared after removing one level of quoting, as an mboxrd reader would.
"""

import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import random
import re
import shutil
import stat
import string
import tempfile
import threading
import time
import unittest

import mr

DELIVER = "/usr/libexec/mailroom/deliver"
SPOOL = "/var/mail"


def unquote(text):
    """Undo one level of mboxrd quoting (`>From ` -> `From `)."""
    return re.sub(r"(?m)^>(>*From )", r"\1", text)


def deliver(args, message):
    if isinstance(message, str):
        message = message.encode()
    return mr.run([DELIVER] + list(args), input=message)


REPORT_FIELDS = ("kind", "rcpt", "printable", "again", "ctl", "sender", "dsn", "text")


def report(p):
    """deliver -q's lines: KIND RECIPIENT PRINTABLE AGAIN CTL SENDER DSN TEXT."""
    out = []
    for line in p.stdout.decode().splitlines():
        f = line.split("\t")
        assert len(f) == len(REPORT_FIELDS), line
        out.append(dict(zip(REPORT_FIELDS, f)))
    return out


def fresh_user(name):
    """A system user with an empty mailbox and no ~/.forward or ~/Maildir."""
    pw = mr.ensure_user(name)
    for p in (os.path.join(SPOOL, name), os.path.join(SPOOL, name + ".lock")):
        if os.path.lexists(p):
            os.unlink(p)
    forward = os.path.join(pw.pw_dir, ".forward")
    if os.path.lexists(forward):
        os.unlink(forward)
    shutil.rmtree(os.path.join(pw.pw_dir, "Maildir"), ignore_errors=True)
    return pw


def split_mbox(data):
    """Our own strict mboxrd parser: [(from_line, message bytes)] — every
    message starts at the file's start or after an empty line, and the
    file ends with the empty separator line."""
    if not data:
        return []
    assert data.startswith(b"From "), data[:80]
    assert data.endswith(b"\n\n"), data[-80:]
    parts = data[:-1].split(b"\n\nFrom ")
    out = []
    for i, p in enumerate(parts):
        if i:
            p = b"From " + p
        if i < len(parts) - 1:
            p += b"\n"
        from_line, _, msg = p.partition(b"\n")
        out.append((from_line.decode(), msg))
    return out


def header_and_body(msg):
    head, _, body = msg.partition(b"\n\n")
    fields = {}
    for line in head.decode().split("\n"):
        if ":" in line and line[:1] not in (" ", "\t"):
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    return fields, body


class Readers:
    """Independent readers of a delivered mailbox, each on its own copy."""

    def __init__(self, case):
        self.case = case
        self.dirs = []

    def cleanup(self):
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def tmpdir(self, owner="nobody"):
        d = tempfile.mkdtemp(prefix="mr-readers-")
        self.dirs.append(d)
        pw = pwd.getpwnam(owner)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    def dovecot(self, location_for, copy_in, fields):
        """Run `doveadm fetch FIELDS all` as nobody on a private copy;
        returns the parsed JSON list, or None without Dovecot.
        `copy_in(dir)` puts the copy in place; `location_for(dir)` is the
        mail_location."""
        doveadm = shutil.which("doveadm")
        if not doveadm:
            return None
        d = self.tmpdir()
        copy_in(d)
        os.makedirs(os.path.join(d, "mail"), exist_ok=True)
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(
                "protocols = pop3\nssl = no\n"
                f"base_dir = {d}/run\nlog_path = {d}/dovecot.log\n"
                f"mail_location = {location_for(d)}\n"
            )
        nobody = pwd.getpwnam("nobody")
        for root, dirs, files in os.walk(d):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
        p = mr.run([doveadm, "-f", "json", "-c", conf, "fetch", fields, "all"],
                   user="nobody", env={"HOME": d, "USER": "nobody"})
        err = p.stderr.decode(errors="replace")
        self.case.assertEqual(p.returncode, 0, err)
        self.case.assertNotIn("Error", err)
        return json.loads(p.stdout.decode())

    def dovecot_mbox(self, path, fields):
        def copy_in(d):
            shutil.copyfile(path, os.path.join(d, "inbox"))
        return self.dovecot(lambda d: f"mbox:{d}/mail:INBOX={d}/inbox", copy_in, fields)

    def dovecot_maildir(self, path, fields):
        def copy_in(d):
            shutil.copytree(path, os.path.join(d, "Maildir"))
        return self.dovecot(lambda d: f"maildir:{d}/Maildir", copy_in, fields)

    def mutt(self, path):
        """mutt's view of an mbox (read-only, on a copy), driven in tmux:
        every message piped out raw, From_ line included.  Returns
        [(from_line, message bytes)] or None without mutt and tmux."""
        muttbin, tmux = shutil.which("mutt"), shutil.which("tmux")
        if not (muttbin and tmux):
            return None
        d = self.tmpdir(owner="root")
        box, out, done = f"{d}/box", f"{d}/out", f"{d}/exited"
        shutil.copyfile(path, box)
        sep = "=====MUTT-MESSAGE-END====="
        with open(f"{d}/muttrc", "w") as f:
            # folder must exist, or mutt's "create it?" question eats the
            # pushed keys.
            f.write(
                f"set folder={d}\nset spoolfile={box}\nset record=/dev/null\n"
                "set header_cache=\"\"\nset check_new=no\nset wait_key=no\n"
                "set auto_tag=yes\nset pipe_split=yes\nset pipe_decode=no\n"
                f"set pipe_sep=\"{sep}\\n\"\n"
                f"push \"<tag-pattern>~A<enter><pipe-entry>cat >> {out}<enter><exit>\"\n"
            )
        sock = f"{d}/tmux.sock"
        p = mr.run([tmux, "-S", sock, "new-session", "-d", "-s", "mutt", "-x", "200", "-y", "50",
                    f"{muttbin} -n -F {d}/muttrc -R -f {box}; touch {done}"],
                   env={"HOME": d})
        self.case.assertEqual(p.returncode, 0, p.stderr)
        deadline = time.time() + 30
        while not os.path.exists(done) and time.time() < deadline:
            time.sleep(0.1)
        screen = mr.run([tmux, "-S", sock, "capture-pane", "-p", "-t", "mutt"]).stdout
        mr.run([tmux, "-S", sock, "kill-server"])
        self.case.assertTrue(os.path.exists(done), f"mutt did not finish:\n{screen.decode(errors='replace')}")
        with open(out, "rb") as f:
            data = f.read()
        pieces = data.split((sep + "\n").encode())
        self.case.assertEqual(pieces[-1], b"", data[-200:])
        result = []
        for piece in pieces[:-1]:
            from_line, _, msg = piece.partition(b"\n")
            result.append((from_line.decode(), msg))
        return result


class Base(mr.Case):
    def setUp(self):
        if not os.access(DELIVER, os.X_OK):
            self.skipTest(f"{DELIVER} is not installed")
        super().setUp()
        self.readers = Readers(self)
        self.addCleanup(self.readers.cleanup)


# Bodies that trip up mbox readers: From_ lookalikes everywhere.
TRICKY = [
    ("plain", "hello\n"),
    ("from-lines", "From here\n>From there\n>>From deep\nnot From here\nFrom: not a separator\n"),
    ("paragraphs", "para\n\nFrom the start of a paragraph\n\nFrom again\n\n"),
    ("postmark-body", "From x@example.org  Sat Nov 21 05:00:00 2026\nlooks like a From_ line\n"),
    ("no-final-newline", "the last line has no newline"),
    ("bounce", ">From quoted only\n"),
]


class MailForAUserIsReadByTheirMailReaders(Base):
    def test_a_user_reads_mail_with_from_lines_in_python_dovecot_and_mutt(self):
        user = "mrreader"
        pw = fresh_user(user)
        expected = []
        for n, (subject, body) in enumerate(TRICKY):
            sender = "" if subject == "bounce" else "alice@example.org"
            msg = f"From: Alice <alice@example.org>\nTo: {user}\nSubject: {subject}\nX-Serial: {n}\n\n{body}"
            p = deliver(["-f", sender or "<>", user], msg)
            self.assertEqual(p.returncode, 0, p.stderr)
            expected.append((sender or "MAILER-DAEMON", subject, body if body.endswith("\n") else body + "\n"))
        path = os.path.join(SPOOL, user)
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_uid, pw.pw_uid)
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "mail")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertFalse(os.path.exists(path + ".lock"))
        with open(path, "rb") as f:
            data = f.read()

        # Our own strict reading: separators, quoting, the envelope.
        ours = split_mbox(data)
        self.assertEqual(len(ours), len(expected))
        for (from_line, msg), (sender, subject, body) in zip(ours, expected):
            self.assertRegex(from_line, r"^From %s  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$" % re.escape(sender))
            fields, got = header_and_body(msg)
            self.assertEqual(fields["subject"], subject)
            self.assertEqual(fields["return-path"], f"<{'' if sender == 'MAILER-DAEMON' else sender}>")
            self.assertEqual(fields["delivered-to"], f"{user}@{mr.HOST}")
            self.assertEqual(unquote(got.decode()), body)
            for line in got.decode().split("\n"):
                self.assertFalse(line.startswith("From "), f"unquoted From_ line in {subject}: {line!r}")

        # Python's mailbox module.
        import mailbox
        box = mailbox.mbox(path, create=False)
        try:
            msgs = [box[k] for k in box.keys()]
        finally:
            box.close()
        self.assertEqual(len(msgs), len(expected), [m["Subject"] for m in msgs])
        for m, (sender, subject, body) in zip(msgs, expected):
            self.assertEqual(m["Subject"], subject)
            self.assertEqual(m.get_from().split()[0], sender)
            self.assertEqual(unquote(m.get_payload()), body, subject)

        # Dovecot, on a copy (it rewrites mboxes it reads).
        got = self.readers.dovecot_mbox(path, "hdr.subject body")
        if got is None:
            mr.lacking("doveadm (package dovecot-core)")
        else:
            self.assertEqual([g["hdr.subject"] for g in got], [e[1] for e in expected])
            for g, (_, subject, body) in zip(got, expected):
                self.assertEqual(unquote(g["body"]), body, subject)

        # mutt, read-only, on a copy.
        got = self.readers.mutt(path)
        if got is None:
            mr.lacking("mutt and tmux (packages mutt, tmux)")
        else:
            self.assertEqual(len(got), len(expected))
            for (from_line, msg), (sender, subject, body) in zip(got, expected):
                self.assertTrue(from_line.startswith(f"From {sender} "), from_line)
                fields, b = header_and_body(msg)
                self.assertEqual(fields["subject"], subject)
                self.assertEqual(unquote(b.decode()), body, subject)


def concurrent_message(w, n):
    serial = f"{w:02d}-{n:03d}"
    rnd = random.Random(serial)
    lines = []
    for i in range(rnd.randint(3, 80)):
        k = rnd.random()
        if k < 0.2:
            lines.append(f"From line {i} of {serial}")
        elif k < 0.3:
            lines.append(f">From quoted line {i}")
        elif k < 0.4:
            lines.append("")
        else:
            lines.append("".join(rnd.choice(string.ascii_letters + "  ") for _ in range(rnd.randint(0, 150))))
    if n % 5 == 4:
        # Larger than one write(2): a writer without locks would be seen
        # half-way or interleaved with another.
        lines += [f"{serial} bulk line {i} " + "x" * 100 for i in range(2000)]
    body = "\n".join(lines) + "\n"
    digest = hashlib.sha256(body.encode()).hexdigest()
    return serial, f"Subject: concurrent {serial}\nX-Serial: {serial}\nX-Body-SHA256: {digest}\n\n{body}".encode()


def check_whole(case, data):
    """Every message in `data` complete and its body unchanged; returns
    the serials in order."""
    serials = []
    for _, msg in split_mbox(data):
        fields, body = header_and_body(msg)
        serial = fields["x-serial"]
        case.assertEqual(hashlib.sha256(unquote(body.decode()).encode()).hexdigest(),
                         fields["x-body-sha256"], f"message {serial} damaged")
        serials.append(serial)
    return serials


class LockedReader:
    """Reads a mailbox the way Debian's readers do: fcntl (lockf) first,
    then the dotlock NAME.lock created with O_EXCL — or by dotlockfile(1)
    when installed, every other time; on a busy lock, release everything,
    pause at random, retry."""

    def __init__(self, path):
        self.path = path
        self.lock = path + ".lock"
        self.dotlockfile = shutil.which("dotlockfile") if mr.have("dotlockfile", "liblockfile-bin") else None
        self.turn = 0

    def _dotlock(self):
        self.turn += 1
        if self.dotlockfile and self.turn % 2:
            p = mr.run([self.dotlockfile, "-l", "-r", "0", self.lock])
            return p.returncode == 0, "dotlockfile"
        try:
            fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False, "excl"
        os.write(fd, b"0")
        os.close(fd)
        return True, "excl"

    def _undotlock(self, how):
        if how == "dotlockfile":
            mr.run([self.dotlockfile, "-u", self.lock], check=True)
        else:
            os.unlink(self.lock)

    def read(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b""
        try:
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    time.sleep(random.uniform(0.005, 0.03))
                    continue
                got, how = self._dotlock()
                if got:
                    break
                fcntl.lockf(fd, fcntl.LOCK_UN)
                time.sleep(random.uniform(0.005, 0.03))
            try:
                chunks = []
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    chunks.append(b)
                return b"".join(chunks)
            finally:
                self._undotlock(how)
                fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class ConcurrentDeliveries(Base):
    WRITERS = 8
    EACH = 25

    def test_eight_deliveries_at_once_while_the_user_reads_leave_every_message_whole(self):
        user = "mrbusy"
        fresh_user(user)
        path = os.path.join(SPOOL, user)
        failures = []
        messages = {}
        for w in range(self.WRITERS):
            for n in range(self.EACH):
                serial, msg = concurrent_message(w, n)
                messages[serial] = msg

        def writer(w):
            try:
                for n in range(self.EACH):
                    serial = f"{w:02d}-{n:03d}"
                    p = deliver(["-f", "load@example.org", user], messages[serial])
                    if p.returncode != 0:
                        failures.append(f"{serial}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(f"writer {w}: {e!r}")

        reader = LockedReader(path)
        stop = threading.Event()
        reads = []
        reader_errors = []

        def read_loop():
            try:
                while not stop.is_set():
                    data = reader.read()
                    # Under the locks, only whole messages are ever seen.
                    reads.append(len(check_whole(self, data)))
                    time.sleep(random.uniform(0.01, 0.05))
            except Exception as e:  # noqa: BLE001 - reported below
                reader_errors.append(repr(e))

        rt = threading.Thread(target=read_loop)
        rt.start()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(self.WRITERS)]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        stop.set()
        rt.join(timeout=60)
        elapsed = time.time() - start
        self.assertEqual(failures, [])
        self.assertEqual(reader_errors, [])
        self.assertTrue(reads, "the reader never got the locks")
        self.assertEqual(reads, sorted(reads), "a reader saw messages disappear")

        with open(path, "rb") as f:
            data = f.read()
        serials = check_whole(self, data)
        self.assertEqual(len(serials), self.WRITERS * self.EACH)
        self.assertEqual(sorted(serials), sorted(messages))
        # Each writer's messages arrive in the order it sent them.
        for w in range(self.WRITERS):
            mine = [s for s in serials if s.startswith(f"{w:02d}-")]
            self.assertEqual(mine, sorted(mine))
        self.assertFalse(os.path.exists(path + ".lock"))
        print(f"\n    {len(serials)} messages in {elapsed:.1f}s, {len(reads)} locked reads", end="", flush=True)


class MaildirUsers(Base):
    def test_a_user_with_a_maildir_gets_files_dovecot_reads_with_the_right_sizes(self):
        user = "mrmaildir"
        pw = fresh_user(user)
        md = os.path.join(pw.pw_dir, "Maildir")
        os.mkdir(md, 0o700)
        os.chown(md, pw.pw_uid, pw.pw_gid)
        expected = {}
        for n, (subject, body) in enumerate(TRICKY):
            msg = f"From: Alice <alice@example.org>\nSubject: {subject}\n\n{body}"
            p = deliver(["-f", "alice@example.org", user], msg)
            self.assertEqual(p.returncode, 0, p.stderr)
            expected[subject] = body if body.endswith("\n") else body + "\n"
        self.assertFalse(os.path.exists(os.path.join(SPOOL, user)), "delivered to the mbox instead")
        for sub in ("tmp", "new", "cur"):
            st = os.lstat(os.path.join(md, sub))
            self.assertEqual(st.st_uid, pw.pw_uid, sub)
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
        names = sorted(os.listdir(os.path.join(md, "new")))
        self.assertEqual(len(names), len(TRICKY))
        sizes = {}
        for name in names:
            p = os.path.join(md, "new", name)
            st = os.lstat(p)
            self.assertEqual(st.st_uid, pw.pw_uid)
            with open(p, "rb") as f:
                content = f.read()
            m = re.fullmatch(r"(\d+)\.[^/:,]+\." + re.escape(mr.HOST) + r",S=(\d+),W=(\d+)", name)
            self.assertIsNotNone(m, name)
            self.assertEqual(int(m.group(2)), len(content), name)
            self.assertEqual(int(m.group(3)), len(content) + content.count(b"\n"), name)
            fields, body = header_and_body(content)
            # A Maildir file is the message: no quoting.
            self.assertEqual(body.decode(), expected[fields["subject"]])
            self.assertEqual(fields["delivered-to"], f"{user}@{mr.HOST}")
            sizes[fields["subject"]] = (len(content), len(content) + content.count(b"\n"))

        # Python's mailbox module.
        import mailbox
        box = mailbox.Maildir(md, create=False)
        self.assertEqual(sorted(m["Subject"] for m in box), sorted(expected))

        # Dovecot checks ,S= against the file (a wrong one is an error).
        got = self.readers.dovecot_maildir(md, "hdr.subject size.physical size.virtual body")
        if got is None:
            mr.lacking("doveadm (package dovecot-core)")
            return
        self.assertEqual(sorted(g["hdr.subject"] for g in got), sorted(expected))
        for g in got:
            s = g["hdr.subject"]
            self.assertEqual((int(g["size.physical"]), int(g["size.virtual"])), sizes[s], s)
            self.assertEqual(g["body"], expected[s], s)


class LockedMailboxes(Base):
    """deliver honours the locks Debian's mail programs take."""

    BEFORE = b"From x@example.org  Sat Nov 21 05:00:00 2026\nSubject: old\n\nold\n\n"

    def prepare(self, user):
        pw = fresh_user(user)
        mr.default_config("mailbox_lock_timeout = 2s\n")
        path = os.path.join(SPOOL, user)
        with open(path, "wb") as f:
            f.write(self.BEFORE)
        os.chown(path, pw.pw_uid, grp.getgrnam("mail").gr_gid)
        os.chmod(path, 0o660)
        return path

    def check_waits_then_delivers(self, user, path, release):
        p = deliver(["-q", user], "Subject: new\n\nnew\n")
        self.assertEqual(p.returncode, 75, p.stdout + p.stderr)
        r, = report(p)
        self.assertEqual((r["kind"], r["dsn"]), ("defer", "4.2.0"), p.stdout)
        with open(path, "rb") as fh:
            self.assertEqual(fh.read(), self.BEFORE)
        release()
        p = deliver(["-q", user], "Subject: new\n\nnew\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(path, "rb") as fh:
            data = fh.read()
        self.assertTrue(data.startswith(self.BEFORE))
        self.assertEqual(len(split_mbox(data)), 2)
        self.assertFalse(os.path.exists(path + ".lock"))

    def test_mail_waits_while_a_mail_program_holds_the_dotlock(self):
        user = "mrdotlocked"
        path = self.prepare(user)
        lock = path + ".lock"
        dotlockfile = shutil.which("dotlockfile")
        if mr.have("dotlockfile", "liblockfile-bin"):
            # As liblockfile's maillock() does for mutt, procmail, ...
            mr.run([dotlockfile, "-l", "-r", "0", lock], check=True)
            release = lambda: mr.run([dotlockfile, "-u", lock], check=True)  # noqa: E731
        else:
            # (The part with liblockfile's own locker is skipped: an
            # O_EXCL dotlock is held instead.)
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            release = lambda: os.unlink(lock)  # noqa: E731
        self.assertTrue(os.path.exists(lock))
        self.check_waits_then_delivers(user, path, release)

    def test_mail_waits_while_a_mail_program_holds_an_fcntl_lock(self):
        user = "mrfcntllocked"
        path = self.prepare(user)
        fd = os.open(path, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            self.check_waits_then_delivers(user, path, lambda: fcntl.lockf(fd, fcntl.LOCK_UN))
        finally:
            os.close(fd)


PRIVS = "/tmp/mr-privs"


class ProgramsAndFilesRunAsTheirUser(Base):
    def setUp(self):
        super().setUp()
        shutil.rmtree(PRIVS, ignore_errors=True)
        os.mkdir(PRIVS)
        os.chmod(PRIVS, 0o1777)
        self.addCleanup(shutil.rmtree, PRIVS, True)

    def write_forward(self, pw, text, mode=0o644):
        p = os.path.join(pw.pw_dir, ".forward")
        with open(p, "w") as f:
            f.write(text)
        os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(p, mode)

    def groups(self, name):
        return sorted(int(g) for g in self.read(name).split())

    @staticmethod
    def groups_of(user):
        pw = pwd.getpwnam(user)
        return sorted({pw.pw_gid} | set(os.getgrouplist(user, pw.pw_gid)))

    def read(self, name):
        with open(os.path.join(PRIVS, name)) as f:
            return f.read()

    def test_an_alias_program_runs_as_the_default_user_nobody(self):
        with open("/etc/mail/aliases", "a") as f:
            f.write(f'\nmrwhoami: "|id -u > {PRIVS}/alias-uid; id -g >> {PRIVS}/alias-uid; id -G > {PRIVS}/alias-groups"\n')
        p = deliver(["-q", "-f", "alice@example.org", "mrwhoami"], "Subject: who\n\nwho am i\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        nobody = pwd.getpwnam("nobody")
        r, = report(p)
        self.assertEqual((r["kind"], r["rcpt"]), ("ok", "mrwhoami"), p.stdout)
        self.assertEqual(r["ctl"], f"nobody:{nobody.pw_uid}:{nobody.pw_gid}")
        self.assertEqual(self.read("alias-uid").split(), [str(nobody.pw_uid), str(nobody.pw_gid)])
        self.assertEqual(os.lstat(f"{PRIVS}/alias-uid").st_uid, nobody.pw_uid)
        self.assertEqual(self.groups("alias-groups"), self.groups_of("nobody"))

    def test_a_program_in_a_users_forward_runs_as_that_user(self):
        pw = fresh_user("mrfwdprog")
        self.write_forward(pw, f'"|id -u > {PRIVS}/fwd-uid; id -G > {PRIVS}/fwd-groups"\n')
        p = deliver(["-q", "-f", "alice@example.org", pw.pw_name], "Subject: fwd\n\nto my program\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        r, = report(p)
        self.assertEqual(r["ctl"], f"{pw.pw_name}:{pw.pw_uid}:{pw.pw_gid}")
        self.assertEqual(self.read("fwd-uid").strip(), str(pw.pw_uid))
        self.assertEqual(os.lstat(f"{PRIVS}/fwd-uid").st_uid, pw.pw_uid)
        # The user's own groups: not root's, not mail (the spool's group).
        self.assertEqual(self.groups("fwd-groups"), self.groups_of(pw.pw_name))
        self.assertFalse(os.path.exists(os.path.join(SPOOL, pw.pw_name)), "no copy was asked for")

    def test_a_file_in_a_users_forward_is_written_as_that_user(self):
        pw = fresh_user("mrfwdfile")
        self.write_forward(pw, f"{PRIVS}/fwd-file\n")
        p = deliver(["-q", "-f", "alice@example.org", pw.pw_name], "Subject: to a file\n\nFrom the file\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        st = os.lstat(f"{PRIVS}/fwd-file")
        self.assertEqual(st.st_uid, pw.pw_uid)
        with open(f"{PRIVS}/fwd-file", "rb") as f:
            (from_line, msg), = split_mbox(f.read())
        self.assertTrue(from_line.startswith("From alice@example.org  "), from_line)
        fields, body = header_and_body(msg)
        self.assertEqual(fields["subject"], "to a file")
        self.assertEqual(body, b">From the file\n")

    def test_a_world_writable_forward_is_ignored(self):
        pw = fresh_user("mrfwdunsafe")
        self.write_forward(pw, f'"|id -u > {PRIVS}/unsafe-ran"\n', mode=0o666)
        p = deliver(["-q", "-f", "alice@example.org", pw.pw_name], "Subject: unsafe\n\nx\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        r, = report(p)
        self.assertEqual((r["kind"], r["printable"], r["text"]),
                         ("ok", pw.pw_name, f"mailbox {SPOOL}/{pw.pw_name}"), p.stdout)
        self.assertFalse(os.path.exists(f"{PRIVS}/unsafe-ran"), "the unsafe .forward's program ran")
        with open(os.path.join(SPOOL, pw.pw_name), "rb") as f:
            self.assertEqual(len(split_mbox(f.read())), 1)

    # /dev/null discards, as in sendmail 8 (deliver.c mailfile(): "Special
    # case /dev/null") and Postfix local(8); aliases like "nobody:
    # /dev/null" are everywhere.
    def test_an_alias_to_dev_null_discards_the_mail(self):
        with open("/etc/mail/aliases", "a") as f:
            f.write("\nmrdevnull: /dev/null\n")
        p = deliver(["-q", "-f", "alice@example.org", "mrdevnull"], "Subject: away\n\nx\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        r, = report(p)
        self.assertEqual((r["kind"], r["printable"]), ("ok", "/dev/null"), p.stdout)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))

    def test_a_mailbox_that_is_a_symlink_is_refused_and_its_target_untouched(self):
        pw = fresh_user("mrsymlink")
        target = f"{PRIVS}/precious"
        with open(target, "w") as f:
            f.write("root's file\n")
        os.chmod(target, 0o666)
        os.symlink(target, os.path.join(SPOOL, pw.pw_name))
        p = deliver(["-q", "-f", "alice@example.org", pw.pw_name], "Subject: s\n\nx\n")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        r, = report(p)
        self.assertIn((r["kind"], r["dsn"][:2]), (("fail", "5."), ("defer", "4.")), p.stdout)
        with open(target) as f:
            self.assertEqual(f.read(), "root's file\n")
        self.assertEqual(os.lstat(target).st_uid, 0)
        self.assertTrue(os.path.islink(os.path.join(SPOOL, pw.pw_name)))
        os.unlink(os.path.join(SPOOL, pw.pw_name))


if __name__ == "__main__":
    unittest.main()
