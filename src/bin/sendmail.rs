//! `sendmail`: submit mail, list the queue, build the aliases
//! index; with -bs, the SMTP server.  A thin `main` over its front
//! end, [`mailroom::cli::sendmail`]; its manual page is `man/sendmail.8.txt`
//! (rendered as `sendmail.8` by `mailroom generate`).

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::sendmail::run(argv));
}
