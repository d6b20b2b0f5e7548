"""Helpers for the compat scenarios.

The scenarios run as root inside the sandbox made by lib/sandbox.sh, with
mailroom installed at its default paths.  Programs that a real system runs
as some user (PHP as www-data, a shell user's mutt) are run as that user
with setpriv, exactly as the kernel would see them.
"""

import grp
import os
import pwd
import shutil
import subprocess
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "/var/spool/mqueue"
ORACLE = os.path.join(REPO, "compat", "oracle")
SM_ORACLE = os.environ.get("SM_ORACLE", "/opt/sm-oracle")
HOST = "mx.example.test"
# Where the scenarios' configurations send mailroom's log lines.
LOG = "/var/log/mail.log"


def run(cmd, input=None, user=None, env=None, check=False, timeout=60, cwd=None):
    """Run cmd (a list), optionally as `user`; returns CompletedProcess with
    bytes stdout/stderr."""
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"] + list(cmd)
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, input=input, capture_output=True, env=full_env, timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def sendmail(args, message=b"", user=None, env=None):
    """/usr/sbin/sendmail ARGS < message."""
    if isinstance(message, str):
        message = message.encode()
    return run(["/usr/sbin/sendmail"] + list(args), input=message, user=user, env=env)


def ensure_user(name, uid=None, home=True):
    """Create a system user in the sandbox (its /etc is private)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    cmd = ["useradd", "--shell", "/bin/sh"]
    if uid is not None:
        cmd += ["--uid", str(uid)]
    cmd += ["--create-home"] if home else ["--no-create-home"]
    cmd.append(name)
    run(cmd, check=True)
    return pwd.getpwnam(name)


def write_config(text, name="mailroom.conf"):
    with open(os.path.join("/etc/mail", name), "w") as f:
        f.write(text)


# The sender checks (SPF, DKIM, DMARC; on by default) look senders up in
# DNS.  Scenarios about other things run in a world without DNS for their
# senders' domains, where every check would be a DNS failure (451): they
# say so.  test_inbound_checks.py has the world with DNS and the checks on.
NO_SENDER_CHECKS = "inbound_checks = no\n"


def default_config(extra=""):
    """The configuration most scenarios use: log to a file (no syslogd in
    the sandbox), queue only unless a scenario wants delivery; no sender
    checks (see NO_SENDER_CHECKS)."""
    write_config(f"hostname = {HOST}\nlog = /var/log/mail.log\ndelivery_mode = queue\n"
                 + NO_SENDER_CHECKS + extra)


def clear_queue():
    for f in os.listdir(QUEUE):
        p = os.path.join(QUEUE, f)
        if os.path.isfile(p):
            os.unlink(p)


def queue_files():
    """The queue's files (not its directories, such as the express run's
    new/)."""
    return sorted(f for f in os.listdir(QUEUE) if not os.path.isdir(os.path.join(QUEUE, f)))


def queue_ids():
    return sorted(f[2:] for f in os.listdir(QUEUE) if f.startswith("qf"))


def only_id(testcase):
    ids = queue_ids()
    testcase.assertEqual(len(ids), 1, f"queue holds {os.listdir(QUEUE)}")
    return ids[0]


def qf(qid):
    with open(os.path.join(QUEUE, "qf" + qid), "rb") as f:
        return f.read()


def df(qid):
    with open(os.path.join(QUEUE, "df" + qid), "rb") as f:
        return f.read()


def qf_records(qid, letter):
    """Values of the control-file records starting with `letter`."""
    return [l[1:] for l in qf(qid).decode("latin-1").split("\n") if l.startswith(letter)]


def qf_recipients(qid):
    return [r.split(":", 1)[1] for r in qf_records(qid, "R")]


def qf_headers(qid):
    """Header records with continuation lines joined: [(cond, 'Name: value')]."""
    out = []
    for line in qf(qid).decode("latin-1").split("\n"):
        if line.startswith("H?"):
            cond, field = line[2:].split("?", 1)
            out.append([cond, field])
        elif line[:1] in (" ", "\t") and out:
            out[-1][1] += "\n" + line
    return [tuple(h) for h in out]


def oracle_available():
    return os.access(os.path.join(SM_ORACLE, "bin", "sendmail.real"), os.X_OK)


def oracle_instance(name, aliases="", virtusertable="", domains="", users="", access=None):
    """A private sendmail 8 instance directory (compat/oracle/mkinst.sh);
    `access`: the text of its access map (makemap source)."""
    d = os.path.join(SM_ORACLE, "run", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)
    files = {}
    for key, text in (("a", aliases), ("v", virtusertable), ("d", domains), ("u", users),
                      ("access", access or "")):
        p = os.path.join(d + ".src-" + key)
        with open(p, "w") as f:
            f.write(text)
        files[key] = p
    env = {"SM_ORACLE": SM_ORACLE}
    if access is not None:
        env["ACCESS"] = files["access"]
    run([os.path.join(ORACLE, "mkinst.sh"), d, files["a"], files["v"], files["d"], files["u"]],
        env=env, check=True)
    return d


def oracle(instance, args, input=None, as_user=None):
    """Run the real sendmail 8 on `instance` (compat/oracle/sm.sh)."""
    env = {"SM_ORACLE": SM_ORACLE}
    if as_user:
        env["SM_AS"] = as_user
    return run([os.path.join(ORACLE, "sm.sh"), instance] + list(args), input=input, env=env)


def snapshot_etc_mail():
    """The files of /etc/mail (name -> bytes), to restore after a test."""
    snap = {}
    for root, _, files in os.walk("/etc/mail"):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                snap[p] = fh.read()
    return snap


def restore_etc_mail(snap):
    for root, dirs, files in os.walk("/etc/mail", topdown=False):
        for f in files:
            p = os.path.join(root, f)
            if p not in snap:
                os.unlink(p)
        for d in dirs:
            p = os.path.join(root, d)
            if not os.listdir(p):
                os.rmdir(p)
    for p, data in snap.items():
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)


# The accounts files a scenario that adds mailboxes (system users) puts
# back afterwards.
PASSWD_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow",
                "/etc/passwd-", "/etc/shadow-", "/etc/group-", "/etc/gshadow-")


def snapshot_files(paths):
    out = {}
    for p in paths:
        try:
            with open(p, "rb") as f:
                out[p] = (f.read(), os.stat(p))
        except FileNotFoundError:
            out[p] = None
    return out


def restore_files(snap):
    for p, v in snap.items():
        if v is None:
            if os.path.lexists(p):
                os.unlink(p)
            continue
        data, st = v
        with open(p, "wb") as f:
            f.write(data)
        os.chown(p, st.st_uid, st.st_gid)
        os.chmod(p, st.st_mode & 0o7777)


def snapshot_tree(top):
    """Every file under `top` (a directory or a file): path -> bytes."""
    out = {}
    if os.path.isfile(top):
        with open(top, "rb") as f:
            out[top] = f.read()
        return out
    for root, _, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            try:
                with open(p, "rb") as f:
                    out[p] = f.read()
            except OSError:
                pass
    return out


def restore_tree(top, snap):
    """Remove the files under `top` that `snap` does not hold (the
    scenario's mailboxes, indexes, stamps); put back the ones it does."""
    if os.path.isdir(top):
        for root, _, files in os.walk(top):
            for n in files:
                p = os.path.join(root, n)
                if p not in snap:
                    os.unlink(p)
    elif os.path.lexists(top) and top not in snap:
        os.unlink(top)
    for p, data in snap.items():
        with open(p, "wb") as f:
            f.write(data)


class Case(unittest.TestCase):
    """Base class: a default configuration and an empty queue per test;
    /etc/mail is put back as it was afterwards."""

    def setUp(self):
        self._etc_mail = snapshot_etc_mail()
        default_config()
        clear_queue()

    def tearDown(self):
        restore_etc_mail(self._etc_mail)

    def run_queue(self, *extra, timeout=120):
        """A queue run as root (`sendmail -qf`, plus `extra` options) that
        must succeed; the result carries the seconds it took as `.seconds`."""
        t = time.monotonic()
        p = run(["/usr/sbin/sendmail", "-qf"] + list(extra), timeout=timeout)
        p.seconds = time.monotonic() - t
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p


# What scenarios keep for people to look at after the run (the panel's
# screenshots): under the checkout's target/, which the sandbox binds back,
# so it outlives the sandbox; COMPAT_ARTIFACTS moves it.
ARTIFACTS = os.environ.get("COMPAT_ARTIFACTS") or os.path.join(REPO, "target", "compat-artifacts")


def artifact_dir(name):
    """An empty directory ARTIFACTS/NAME for one scenario's keepsakes
    (what a previous run left there goes)."""
    d = os.path.join(ARTIFACTS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def log_mark():
    """Where the log ends now: pass it to log_since later."""
    try:
        return os.path.getsize(LOG)
    except FileNotFoundError:
        return 0


def log_since(mark):
    """The log lines written since log_mark() returned `mark`."""
    try:
        with open(LOG, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------
# Missing prerequisites.  .ci/run installs every program a scenario drives,
# so under CI a missing one is a broken install step and fails the run;
# elsewhere the scenario (or the part of it) is skipped, said so on its
# line and counted in make test's summary (lib/run.py).


def under_ci():
    """CI set to anything but empty, 0, false or no (CI systems set
    CI=true; .ci/run sets it itself)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


# The scenario running now (set by lib/run.py), for the skip list.
CURRENT_TEST = "?"


def record_skip(test_id, why):
    """Add a line to make test's list of skips (the file descriptor
    MAILROOM_SKIP_FD, opened by run-all.sh outside the sandbox)."""
    fd = os.environ.get("MAILROOM_SKIP_FD")
    if fd:
        try:
            os.write(int(fd), f"compat {test_id}: {why}\n".encode())
        except OSError:
            pass


def lacking(what):
    """Part of the running scenario cannot run: `what` (a program and its
    Debian package) is missing.  Fails under CI; elsewhere notes it on the
    test's line and in the skip list, and returns."""
    if under_ci():
        raise AssertionError(f"prerequisite missing under CI: {what} [.ci/run installs every one]")
    print(f"\n    SKIPPED part: {what}", end="", flush=True)
    record_skip(CURRENT_TEST, f"part: {what}")


def have(program, package):
    """True when `program` (a path, or a name looked up in /usr/sbin:/usr/bin:
    /sbin:/bin) can be run; else lacking() and False."""
    path = program if "/" in program else shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path and os.access(path, os.X_OK):
        return True
    lacking(f"{program} (package {package})")
    return False
