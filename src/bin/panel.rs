//! `panel`: the web control panel's front end (CGI, or `panel --inetd`
//! on its own TLS port).  A thin `main` over [`mailroom::cli::panel`].

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::panel::main(args));
}
