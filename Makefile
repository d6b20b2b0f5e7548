# mailroom — build, test, install.
#
#   make            build the release binaries
#   make test       unit + integration tests, lint, and (as root) the compat suite
#   make demo       install into a throwaway root and run the stack end to end
#   make bench      print the performance figures
#   make bench-peers   (root) the same machine's figures beside dma, Postfix and
#                   Dovecot, installed privately in a sandbox (benches/peers/enter.sh);
#                   PEERS="submission drain ..." picks sections, ROUNDS=N rounds
#   make fuzz       run each fuzz target FUZZ_SECONDS seconds (fuzz/run.sh)
#   make torture    the long crash torture and soak (issue 9)
#   make install    install under $(PREFIX) (default /usr), honouring $(DESTDIR),
#                   with the periodic queue run (cron.d file, systemd timer)
#   make install-services   turn on SMTP (25, 587, 465) and POP3 (110, 995):
#                   systemd socket units or inetd lines (mailroom setup services)

PREFIX      ?= /usr
DESTDIR     ?=
SBINDIR     := $(PREFIX)/sbin
BINDIR      := $(PREFIX)/bin
LIBDIR      := $(PREFIX)/lib
LIBEXECDIR  := $(PREFIX)/libexec/mailroom
DATADIR     := $(PREFIX)/share
MAN5DIR     := $(DATADIR)/man/man5
MAN8DIR     := $(DATADIR)/man/man8
BASHCOMPDIR := $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  := $(DATADIR)/zsh/site-functions
FISHCOMPDIR := $(DATADIR)/fish/vendor_completions.d
# The sendmail files and the spools stay where admins and other programs
# expect them, whatever the prefix.
MAILCONFDIR := /etc/mail
QUEUEDIR    := /var/spool/mqueue
MAILSPOOL   := /var/mail
CRONDIR     := /etc/cron.d
# systemd reads units from /usr/lib and /usr/local/lib alike.
SYSTEMDUNITDIR ?= $(LIBDIR)/systemd/system
# pop3d: the empty directory its network process is shut in, and the
# spool of its small state files (POP-before-SMTP).
EMPTYDIR    := /var/lib/mailroom/empty
STATEDIR    := /var/spool/mailroom
# The group that may write the queue; sendmail is set-group-id to it.
QUEUEGROUP  := mqueue

CARGO       ?= cargo
RELEASE     := target/release
# Shell completions and manual pages, written by `mailroom generate` from
# their sources (mailroom's --help, the programs' headers in src/bin, the
# configuration keys, the filter docs, the log catalogue).
GENERATED   := target/generated
# Pages of our own beside mailroom's (mailq.8 and newaliases.8 are links
# to sendmail.8).
MAN8PAGES   := sendmail.8 qrun.8 deliver.8 pop3d.8
MAN5PAGES   := mailroom.conf.5 mailroom-filter.5 mailroom-log.5
# Helper programs installed in $(LIBEXECDIR) (those built so far).
HELPERS     := qrun deliver pop3d checkpassword panel-helper
# Configuration for other programs, installed for the admin to copy
# (nothing reads it there): Dovecot's (etc/dovecot).
DOVECOTDIR  := $(DATADIR)/mailroom/dovecot
# The web panel's snippets for Apache and nginx, for the admin to copy
# into a site (nothing enabled): etc/web.
WEBDIR      := $(DATADIR)/mailroom/web

IS_ROOT     := $(shell [ "$$(id -u)" = 0 ] && echo yes)
# The files in etc/ name the default paths; this gives them the installed ones.
SUBST_PATHS := sed -e 's\#/usr/sbin/\#$(SBINDIR)/\#g' -e 's\#/usr/libexec/mailroom/\#$(LIBEXECDIR)/\#g'

# A test that cannot run for want of a prerequisite (a program, root, a
# tmpfs) says SKIPPED and adds a line here ("cargo TEST: what is missing",
# "compat TEST: ..."); make test ends by counting them.  Under CI (CI set,
# as CI systems and .ci/run do) a skip is a failure naming what is missing.
SKIP_LOG    := $(CURDIR)/target/skipped-tests
export MAILROOM_SKIP_LOG := $(SKIP_LOG)

.PHONY: all build test lint unit compat demo bench bench-peers fuzz torture install install-services uninstall uninstall-services clean

all: build

build:
	$(CARGO) build --release --locked
	rm -rf $(GENERATED)
	$(RELEASE)/mailroom generate $(GENERATED)

unit:
	@mkdir -p $(dir $(SKIP_LOG)) && rm -f $(SKIP_LOG)
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# (compat/run-all.sh says SKIPPED when not root, and fails under CI.)
test: lint unit build
	@compat/run-all.sh
	@if [ -s $(SKIP_LOG) ]; then echo "skipped (a prerequisite is missing):"; sed 's/^/  /' $(SKIP_LOG); fi
	@cat $(SKIP_LOG) 2>/dev/null | awk '/^cargo /{c++} /^compat /{k++} \
	  END{printf "make test: passed; skipped: %d cargo tests, %d compat scenarios or parts\n", c, k}'

compat: build
	compat/run-all.sh

demo: build
	@compat/demo.sh

bench: build
	$(CARGO) bench --locked --bench bench

# Builds nothing here: the sandbox runs "make install" from MAILROOM_CHECKOUT
# (default: this checkout), which builds what is out of date.
PEERS  ?=
ROUNDS ?= 3
bench-peers:
ifeq ($(IS_ROOT),yes)
	benches/peers/enter.sh $(PEERS) --rounds $(ROUNDS)
else
	@echo "bench-peers: needs root (private namespaces, apt-get inside overlays): run 'sudo make bench-peers'"; exit 1
endif

# Coverage-guided fuzzing, one target after another; `make test` replays
# the committed corpora (tests/fuzz_regressions.rs).
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh -t $(FUZZ_SECONDS)

# The long form of tests/torture.rs (make test runs 300 kill points and a
# one-minute soak); prints kill points, messages submitted / accepted /
# delivered / bounced / lost / duplicated and mailboxes checked / corrupt;
# then every fuzz target for FUZZ_RUNS inputs (executions / crashes);
# then, as root, the security checks with the relay battery ("relay: N
# attempts, 0 relayed") and the kill torture on the installed suite
# (compat/test_killed_at_random.py, COMPAT_KILL_POINTS of them).
TORTURE_KILL_POINTS  ?= 10000
COMPAT_KILL_POINTS   ?= 5000
TORTURE_SOAK_SECONDS ?= 300
FUZZ_RUNS            ?= 1000000
torture:
	TORTURE_KILL_POINTS=$(TORTURE_KILL_POINTS) TORTURE_SOAK_SECONDS=$(TORTURE_SOAK_SECONDS) \
	  $(CARGO) test --release --locked --test torture -- --nocapture --test-threads=1
	fuzz/run.sh -n $(FUZZ_RUNS)
ifeq ($(IS_ROOT),yes)
	COMPAT_KILL_POINTS=$(COMPAT_KILL_POINTS) compat/run-all.sh -k test_security -k KilledAtRandom
else
	@echo "relay: SKIPPED (the relay battery and the installed-suite kill torture need root; run 'sudo make torture')"
endif

install: build
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LIBEXECDIR)
	install -d -m 0755 $(DESTDIR)$(MAILCONFDIR)
	install -d -m 2775 $(DESTDIR)$(MAILSPOOL)
	install -d -m 2770 $(DESTDIR)$(QUEUEDIR)
	install -d -m 2770 $(DESTDIR)$(QUEUEDIR)/new
	install -d -m 0555 $(DESTDIR)$(EMPTYDIR)
	install -d -m 0755 $(DESTDIR)$(STATEDIR)
	install -d -m 2770 $(DESTDIR)$(STATEDIR)/limits
	install -d -m 2750 $(DESTDIR)$(STATEDIR)/quota-warnings
	install -d -m 0700 $(DESTDIR)$(STATEDIR)/panel
ifeq ($(IS_ROOT),yes)
ifeq ($(DESTDIR),)
	getent group $(QUEUEGROUP) >/dev/null || groupadd --system $(QUEUEGROUP)
	getent group mail >/dev/null || groupadd --system mail
endif
endif
	install -m 2755 $(RELEASE)/sendmail $(DESTDIR)$(SBINDIR)/sendmail
	ln -sf ../sbin/sendmail $(DESTDIR)$(BINDIR)/mailq
	ln -sf ../sbin/sendmail $(DESTDIR)$(BINDIR)/newaliases
	ln -sf ../sbin/sendmail $(DESTDIR)$(LIBDIR)/sendmail
	for h in $(HELPERS); do \
	  if [ -f $(RELEASE)/$$h ]; then install -m 0755 $(RELEASE)/$$h $(DESTDIR)$(LIBEXECDIR)/$$h; fi; \
	done
	if [ -f $(RELEASE)/qrun ]; then chmod 4750 $(DESTDIR)$(LIBEXECDIR)/qrun; fi
	install -d -m 0755 $(DESTDIR)$(DOVECOTDIR)
	for f in etc/dovecot/*; do \
	  $(SUBST_PATHS) $$f > $(DESTDIR)$(DOVECOTDIR)/$${f##*/} && chmod 0644 $(DESTDIR)$(DOVECOTDIR)/$${f##*/} || exit 1; \
	done
	if [ -f $(RELEASE)/mailroom ]; then install -m 0755 $(RELEASE)/mailroom $(DESTDIR)$(SBINDIR)/mailroom; fi
	# The web panel's front end: unprivileged (CGI as the web server's
	# user, or `panel --inetd` on 8443, which drops root itself).
	if [ -f $(RELEASE)/panel ]; then install -m 0755 $(RELEASE)/panel $(DESTDIR)$(LIBEXECDIR)/panel; fi
	install -d -m 0755 $(DESTDIR)$(WEBDIR)
	for f in etc/web/*; do \
	  $(SUBST_PATHS) $$f > $(DESTDIR)$(WEBDIR)/$${f##*/} && chmod 0644 $(DESTDIR)$(WEBDIR)/$${f##*/} || exit 1; \
	done
	install -d -m 0755 $(DESTDIR)$(MAN5DIR) $(DESTDIR)$(MAN8DIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 $(GENERATED)/man/mailroom*.8 $(addprefix $(GENERATED)/man/,$(MAN8PAGES)) $(DESTDIR)$(MAN8DIR)/
	install -m 0644 $(addprefix $(GENERATED)/man/,$(MAN5PAGES)) $(DESTDIR)$(MAN5DIR)/
	ln -sf sendmail.8 $(DESTDIR)$(MAN8DIR)/mailq.8
	ln -sf sendmail.8 $(DESTDIR)$(MAN8DIR)/newaliases.8
	install -m 0644 $(GENERATED)/completions/mailroom.bash $(DESTDIR)$(BASHCOMPDIR)/mailroom
	install -m 0644 $(GENERATED)/completions/_mailroom $(DESTDIR)$(ZSHCOMPDIR)/_mailroom
	install -m 0644 $(GENERATED)/completions/mailroom.fish $(DESTDIR)$(FISHCOMPDIR)/mailroom.fish
	# Never overwrite an admin's configuration.
	[ -e $(DESTDIR)$(MAILCONFDIR)/mailroom.conf ] || install -m 0644 etc/mailroom.conf $(DESTDIR)$(MAILCONFDIR)/mailroom.conf
	[ -e $(DESTDIR)$(MAILCONFDIR)/aliases ] || install -m 0644 etc/aliases $(DESTDIR)$(MAILCONFDIR)/aliases
	# The periodic queue run: the cron line (an admin's edits kept), and the
	# systemd units -- the timer, and the sockets "mailroom setup services"
	# enables -- with this installation's paths.
	install -d -m 0755 $(DESTDIR)$(CRONDIR) $(DESTDIR)$(SYSTEMDUNITDIR)
	[ -e $(DESTDIR)$(CRONDIR)/mailroom ] || { $(SUBST_PATHS) etc/cron.d/mailroom > $(DESTDIR)$(CRONDIR)/mailroom && \
	  chmod 0644 $(DESTDIR)$(CRONDIR)/mailroom; }
	for u in etc/systemd/*; do \
	  $(SUBST_PATHS) $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} || exit 1; \
	done
ifeq ($(IS_ROOT),yes)
	if getent group $(QUEUEGROUP) >/dev/null; then \
	  chown root:$(QUEUEGROUP) $(DESTDIR)$(SBINDIR)/sendmail $(DESTDIR)$(QUEUEDIR) $(DESTDIR)$(QUEUEDIR)/new && \
	  chmod 2755 $(DESTDIR)$(SBINDIR)/sendmail && chmod 2770 $(DESTDIR)$(QUEUEDIR) $(DESTDIR)$(QUEUEDIR)/new && \
	  if [ -f $(DESTDIR)$(LIBEXECDIR)/qrun ]; then chown root:$(QUEUEGROUP) $(DESTDIR)$(LIBEXECDIR)/qrun && chmod 4750 $(DESTDIR)$(LIBEXECDIR)/qrun; fi; \
	else echo "warning: group $(QUEUEGROUP) does not exist: create it and chgrp sendmail and $(QUEUEDIR)"; fi
	if getent group mail >/dev/null; then chown root:mail $(DESTDIR)$(MAILSPOOL); chmod 2775 $(DESTDIR)$(MAILSPOOL); fi
	# checkpassword: set-uid root for Dovecot's auth user only -- group
	# dovecot where it exists; else (Dovecot not installed yet) the program
	# itself turns away everyone but root and checkpassword_callers.
	if [ -f $(DESTDIR)$(LIBEXECDIR)/checkpassword ]; then \
	  if getent group dovecot >/dev/null; then chown root:dovecot $(DESTDIR)$(LIBEXECDIR)/checkpassword && chmod 4750 $(DESTDIR)$(LIBEXECDIR)/checkpassword; \
	  else chown root:root $(DESTDIR)$(LIBEXECDIR)/checkpassword && chmod 4755 $(DESTDIR)$(LIBEXECDIR)/checkpassword; fi; \
	fi
	# panel-helper: set-uid root for the web server's user only -- group
	# www-data where it exists; else the program itself turns away
	# everyone but root and panel_callers.
	if [ -f $(DESTDIR)$(LIBEXECDIR)/panel-helper ]; then \
	  if getent group www-data >/dev/null; then chown root:www-data $(DESTDIR)$(LIBEXECDIR)/panel-helper && chmod 4750 $(DESTDIR)$(LIBEXECDIR)/panel-helper; \
	  else chown root:root $(DESTDIR)$(LIBEXECDIR)/panel-helper && chmod 4755 $(DESTDIR)$(LIBEXECDIR)/panel-helper; fi; \
	fi
	# The outbound limits' counters: written by the set-group-id sendmail
	# and the SMTP server's unprivileged side (group mqueue), by no one else.
	if getent group $(QUEUEGROUP) >/dev/null; then chown root:$(QUEUEGROUP) $(DESTDIR)$(STATEDIR)/limits; chmod 2770 $(DESTDIR)$(STATEDIR)/limits; fi
	# The quota warnings' records: written by delivery (root), read by the
	# SMTP server's unprivileged side (group mqueue) for its RCPT check.
	if getent group $(QUEUEGROUP) >/dev/null; then chown root:$(QUEUEGROUP) $(DESTDIR)$(STATEDIR)/quota-warnings; chmod 2750 $(DESTDIR)$(STATEDIR)/quota-warnings; fi
ifeq ($(DESTDIR),)
	# Where systemd is PID 1 the timer runs the queue (the cron line stands back).
	if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now mailroom-qrun.timer; fi
endif
endif

# The network services: mailroom setup services decides between systemd
# socket units and inetd lines, says what it did, and is safe to repeat.
install-services:
	$(SBINDIR)/mailroom setup services

uninstall-services:
	$(SBINDIR)/mailroom setup services --remove

uninstall:
ifeq ($(IS_ROOT),yes)
ifeq ($(DESTDIR),)
	# Nothing left that starts programs about to go.
	if [ -x $(SBINDIR)/mailroom ]; then $(SBINDIR)/mailroom setup services --remove || true; fi
	if [ -d /run/systemd/system ]; then systemctl disable --now mailroom-qrun.timer || true; fi
endif
endif
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(notdir $(wildcard etc/systemd/*))) $(DESTDIR)$(CRONDIR)/mailroom
	rm -f $(DESTDIR)$(SBINDIR)/sendmail $(DESTDIR)$(BINDIR)/mailq $(DESTDIR)$(BINDIR)/newaliases \
	      $(DESTDIR)$(LIBDIR)/sendmail $(DESTDIR)$(SBINDIR)/mailroom
	rm -f $(DESTDIR)$(MAN8DIR)/mailroom.8 $(DESTDIR)$(MAN8DIR)/mailroom-*.8 \
	      $(addprefix $(DESTDIR)$(MAN8DIR)/,$(MAN8PAGES) mailq.8 newaliases.8) \
	      $(addprefix $(DESTDIR)$(MAN5DIR)/,$(MAN5PAGES)) \
	      $(DESTDIR)$(BASHCOMPDIR)/mailroom $(DESTDIR)$(ZSHCOMPDIR)/_mailroom $(DESTDIR)$(FISHCOMPDIR)/mailroom.fish
	rm -rf $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DATADIR)/mailroom
	@echo "kept: $(MAILCONFDIR), $(QUEUEDIR), $(MAILSPOOL), $(STATEDIR), $(EMPTYDIR) and the group $(QUEUEGROUP)"

clean:
	$(CARGO) clean
