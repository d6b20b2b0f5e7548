//! `checkpassword`: the login check for Dovecot (the qmail checkpassword
//! interface).  A thin `main` over its front end,
//! [`mailroom::cli::checkpassword`], which documents it.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(mailroom::cli::checkpassword::main(args));
}
