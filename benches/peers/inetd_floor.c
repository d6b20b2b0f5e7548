/* The inetd floor of make bench-peers' smtpd section: the least work an
 * SMTP server started by inetd for each connection (as mailroom's
 * `sendmail -bs` is) must do to give mailroom's promise, a 250 only once
 * the message survives a power cut.  Per connection: inetd's fork and
 * exec of this small program.  Per message: its bytes written to a new
 * file in DIR, fsync, rename to its final name, fsync of DIR.  Nothing
 * else: no parsing beyond finding the commands, no checks, no log, no
 * privilege split.  What mailroom spends above this is its own.
 *
 * Usage (inetd.conf, nowait): inetd-floor DIR.  The socket is stdin and
 * stdout.  Answers EHLO/HELO with PIPELINING, 354 to DATA, 221 to QUIT,
 * 250 to anything else. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char in[1 << 20];
static size_t in_len;
static char out[1 << 16];
static size_t out_len;

static void flush_out(void) {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out + done, out_len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        done += (size_t)n;
    }
    out_len = 0;
}

static void reply(const char *s) {
    size_t n = strlen(s);
    if (out_len + n > sizeof out) flush_out();
    memcpy(out + out_len, s, n);
    out_len += n;
}

static void store(int dir, const char *data, size_t len) {
    static unsigned seq;
    char tmp[64], name[64];
    snprintf(tmp, sizeof tmp, "tmp.%d.%u", (int)getpid(), seq);
    snprintf(name, sizeof name, "msg.%d.%u", (int)getpid(), seq);
    seq++;
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) _exit(1);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) _exit(1);
    if (renameat(dir, tmp, dir, name) != 0 || fsync(dir) != 0) _exit(1);
}

/* Where "\r\n.\r\n" ends the data that starts at p (the data's own first
 * line may be the dot), or NULL. */
static const char *end_of_data(const char *p, const char *end) {
    if (end - p >= 3 && memcmp(p, ".\r\n", 3) == 0) return p;
    for (const char *q = p; q + 5 <= end; q++)
        if (memcmp(q, "\r\n.\r\n", 5) == 0) return q + 2;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 73;
    size_t pos = 0;
    int in_data = 0;
    reply("220 floor ESMTP\r\n");
    for (;;) {
        for (;;) {
            const char *p = in + pos, *end = in + in_len;
            if (in_data) {
                const char *dot = end_of_data(p, end);
                if (!dot) break;
                store(dir, p, (size_t)(dot - p));
                pos = (size_t)(dot - in) + 3;
                in_data = 0;
                reply("250 2.0.0 queued\r\n");
                continue;
            }
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) break;
            pos = (size_t)(nl - in) + 1;
            if (strncasecmp(p, "EHLO", 4) == 0 || strncasecmp(p, "HELO", 4) == 0) {
                reply("250-floor\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
            } else if (strncasecmp(p, "DATA", 4) == 0) {
                reply("354 go on\r\n");
                in_data = 1;
            } else if (strncasecmp(p, "QUIT", 4) == 0) {
                reply("221 bye\r\n");
                flush_out();
                return 0;
            } else {
                reply("250 ok\r\n");
            }
        }
        flush_out();
        if (pos > 0) {
            memmove(in, in + pos, in_len - pos);
            in_len -= pos;
            pos = 0;
        }
        if (in_len == sizeof in) return 1;
        ssize_t n = read(0, in + in_len, sizeof in - in_len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        in_len += (size_t)n;
    }
}
