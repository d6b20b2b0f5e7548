//! `deliver`: the local delivery agent.  A thin `main` over its front
//! end, [`mailroom::cli::deliver`]; its manual page is `man/deliver.8.txt`
//! (rendered as `deliver.8` by `mailroom generate`).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::deliver::main(args));
}
