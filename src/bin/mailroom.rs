//! NAME
//!     mailroom — the admin command
//!
//! SYNOPSIS
//!     mailroom explain ADDRESS...
//!
//! DESCRIPTION
//!     What a hosting control panel does for mail, from the shell.  See
//!     `mailroom --help` for every subcommand.
//!
//! PRIVILEGES
//!     Run by root to change tables; reading commands work for anyone who
//!     may read the files.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::admin::main(args));
}
