//! `panel-helper`: the web control panel's root side, one request and
//! one answer per run.  A thin `main` over its front end,
//! [`mailroom::cli::panel_helper`], which documents it.

fn main() {
    std::process::exit(mailroom::cli::panel_helper::main());
}
