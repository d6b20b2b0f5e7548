//! `pop3d`: the POP3 server.  A thin `main` over its front
//! end, [`mailroom::cli::pop3d`]; its manual page is `man/pop3d.8.txt`
//! (rendered as `pop3d.8` by `mailroom generate`).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::pop3d::main(args));
}
