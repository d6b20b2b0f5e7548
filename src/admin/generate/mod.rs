//! `mailroom generate DIR` (hidden): shell completions and manual pages,
//! each made from the source that defines what it describes, so they never
//! drift from the programs.  `make build` runs it into `target/generated`;
//! `make install` installs the results.
//!
//! Writes:
//! * `DIR/completions/mailroom.bash`, `DIR/completions/_mailroom` (zsh),
//!   `DIR/completions/mailroom.fish`, from the clap definition of `--help`;
//! * `DIR/man/mailroom.8` and one page per subcommand
//!   (`mailroom-alias.8`, `mailroom-alias-add.8`, ...), likewise
//!   (clap_mangen);
//! * `DIR/man/sendmail.8`, `qrun.8`, `deliver.8`, `pop3d.8`,
//!   `mailroom.conf.5`, `mailroom-filter.5`, `mailroom-log.5` ([`pages`]).

pub mod pages;
pub mod roff;

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// Write the completions and the manual pages under `dir`.
pub fn generate(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    let man = dir.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    let mut cmd = visible(super::Cli::command());
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "mailroom",
            &completions,
        )?);
    }
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    clap_pages(cmd, &man, &mut written)?;
    pages::write_all(&man, &mut written)?;
    Ok(written)
}

/// `cmd` without its hidden subcommands (`generate` itself): the
/// completion generators list hidden subcommands too.
fn visible(cmd: clap::Command) -> clap::Command {
    let mut out = clap::Command::new("mailroom")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    out
}

/// One section-8 page for `cmd` and each visible subcommand, recursively.
fn clap_pages(
    cmd: clap::Command,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        clap_pages(sub, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .section("8")
        .manual("System Administration")
        .source(format!("mailroom {}", env!("CARGO_PKG_VERSION")));
    written.push(page.generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_completions_and_pages() {
        let dir = std::env::temp_dir().join(format!("mr-generate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = generate(&dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for n in [
            "mailroom.bash",
            "_mailroom",
            "mailroom.fish",
            "mailroom.8",
            "sendmail.8",
            "qrun.8",
            "deliver.8",
            "pop3d.8",
            "mailroom.conf.5",
            "mailroom-filter.5",
            "mailroom-log.5",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert!(
            names.iter().any(|x| x == "mailroom-alias-add.8"),
            "{names:?}"
        );
        // The hidden `generate` command has no page and no completion
        // (`mailroom dkim generate` has both).
        assert!(
            !names.iter().any(|x| x == "mailroom-generate.8"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|x| x == "mailroom-dkim-generate.8"),
            "{names:?}"
        );
        let page = std::fs::read_to_string(dir.join("man/mailroom.8")).unwrap();
        assert!(page.starts_with(".ie"), "{}", &page[..40.min(page.len())]);
        assert!(page.contains(".TH mailroom 8"), "{page}");
        for f in ["mailroom.bash", "_mailroom", "mailroom.fish"] {
            let text = std::fs::read_to_string(dir.join("completions").join(f)).unwrap();
            assert!(text.contains("catchall"), "{f}");
            assert!(!text.contains("mailroom__subcmd__generate"), "{f}");
            assert!(!text.contains("manual pages"), "{f}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
