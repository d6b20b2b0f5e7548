//! `qrun`: the queue runner.  A thin `main` over its front
//! end, [`mailroom::cli::qrun`]; its manual page is `man/qrun.8.txt`
//! (rendered as `qrun.8` by `mailroom generate`).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::qrun::main(args));
}
