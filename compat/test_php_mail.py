"""A PHP site calls mail(); PHP runs /usr/sbin/sendmail -t -i as www-data."""

import shutil
import unittest

import mr

PHP = shutil.which("php")


@unittest.skipUnless(PHP, "php-cli is not installed (.ci/run installs it)")
class PhpMail(mr.Case):
    def php(self, code, user="www-data"):
        return mr.run([PHP, "-n", "-r", code], user=user)

    def test_default_sendmail_path_is_ours(self):
        p = mr.run([PHP, "-n", "-r", "echo ini_get('sendmail_path');"])
        self.assertEqual(p.stdout.decode().strip(), "/usr/sbin/sendmail -t -i")

    def test_mail_returns_true_and_the_message_is_queued(self):
        p = self.php(
            'var_dump(mail("info@example.org", "Contact form", "Hello,\\n.\\nline after a lone dot\\n", '
            '"From: web@example.com\\r\\nReply-To: visitor@example.net"));'
        )
        self.assertEqual(p.stdout.decode().strip(), "bool(true)", p.stderr)
        qid = mr.only_id(self)
        self.assertEqual(mr.qf_recipients(qid), ["info@example.org"])
        self.assertEqual(mr.qf_records(qid, "S"), ["www-data"])
        fields = [h for _, h in mr.qf_headers(qid)]
        self.assertIn("To: info@example.org", fields)
        self.assertIn("Subject: Contact form", fields)
        self.assertIn("From: web@example.com", fields)
        self.assertIn("Reply-To: visitor@example.net", fields)
        self.assertTrue(any(f.startswith("Received: (from www-data@localhost)") for f in fields), fields)
        # PHP >= 8 writes CRLF and ends the body with one more line end; the
        # queue stores LF; -i keeps the lone dot.
        self.assertEqual(mr.df(qid), b"Hello,\n.\nline after a lone dot\n\n")

    def test_a_sender_set_with_f_is_flagged_for_untrusted_users(self):
        p = self.php('var_dump(mail("a@example.org", "s", "b", "", "-fbounce@example.com"));')
        self.assertEqual(p.stdout.decode().strip(), "bool(true)", p.stderr)
        qid = mr.only_id(self)
        self.assertEqual(mr.qf_records(qid, "S"), ["bounce@example.com"])
        fields = [h for _, h in mr.qf_headers(qid)]
        self.assertIn(f"X-Authentication-Warning: {mr.HOST}: www-data set sender to bounce@example.com using -f", fields)

    def test_a_trusted_web_server_sets_the_sender_quietly(self):
        mr.default_config("trusted_users = www-data\n")
        p = self.php('var_dump(mail("a@example.org", "s", "b", "", "-fbounce@example.com"));')
        self.assertEqual(p.stdout.decode().strip(), "bool(true)", p.stderr)
        qid = mr.only_id(self)
        fields = [h for _, h in mr.qf_headers(qid)]
        self.assertFalse(any(f.startswith("X-Authentication-Warning") for f in fields), fields)


if __name__ == "__main__":
    unittest.main()
