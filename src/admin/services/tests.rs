use super::*;

fn programs() -> Programs {
    Programs::under(Path::new("/usr/sbin"))
}

fn port_of(name: &str) -> Option<u16> {
    service_ports(
        "smtp 25/tcp mail\nsubmissions 465/tcp ssmtp smtps\nsubmission 587/tcp\npop3 110/tcp pop-3\npop3s 995/tcp\n",
    )
    .into_iter()
    .find(|(n, _)| n == name)
    .map(|(_, p)| p)
}

#[test]
fn the_lines_are_those_of_the_shipped_inetd_conf() {
    let shipped = include_str!("../../../etc/inetd/inetd.conf");
    let shipped: Vec<Vec<&str>> = shipped
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    for s in SERVICES {
        let line = programs().inetd_line(s);
        let ours: Vec<&str> = line.split_whitespace().collect();
        assert!(
            shipped.contains(&ours),
            "etc/inetd/inetd.conf lacks {line:?}"
        );
    }
    assert_eq!(
        Programs::under(Path::new("/usr/local/sbin")).inetd_line(&SERVICES[3]),
        "pop3\tstream\ttcp\tnowait\troot\t/usr/local/libexec/mailroom/pop3d\tpop3d"
    );
}

#[test]
fn adding_finds_ours_and_others_and_is_idempotent() {
    let p = programs();
    let debian = "# /etc/inetd.conf\n\n#:MAIL: Mail, news and uucp services.\n\n#:INFO: Info services\nident stream tcp wait identd /usr/sbin/identd identd\n";
    let lines: Vec<String> = SERVICES.iter().map(|s| p.inetd_line(s)).collect();
    for (s, l) in SERVICES.iter().zip(&lines) {
        assert_eq!(find(debian, l, s.port, &port_of), Found::Nothing);
    }
    let added = add_lines(debian, &lines);
    assert!(
        added.starts_with("# /etc/inetd.conf\n\n#:MAIL: Mail, news and uucp services.\nsmtp\t"),
        "{added}"
    );
    assert!(added.ends_with("identd identd\n"), "{added}");
    for (s, l) in SERVICES.iter().zip(&lines) {
        assert_eq!(find(&added, l, s.port, &port_of), Found::Ours(true));
    }
    // Removing takes exactly ours away.
    assert_eq!(remove_lines(&added, &lines), debian);
    // Another program on 465 under an alias is found and left alone.
    let exim = "ssmtp stream tcp nowait root /usr/sbin/exim4 exim4 -bs -tls-on-connect\n";
    assert!(matches!(
        find(exim, &lines[2], 465, &port_of),
        Found::Other(_)
    ));
    assert_eq!(remove_lines(exim, &lines), exim);
    // A line update-inetd turned off is ours, disabled.
    let off = format!("#<off># {}\n", lines[0]);
    assert_eq!(find(&off, &lines[0], 25, &port_of), Found::Ours(false));
    assert_eq!(enable_lines(&off, &lines[..1]), format!("{}\n", lines[0]));
    assert_eq!(remove_lines(&off, &lines), "");
}

#[test]
fn the_panel_line_and_units_are_the_shipped_ones() {
    let line = programs().inetd_line(&PANEL[0]);
    assert_eq!(
        line,
        "8443\tstream\ttcp\tnowait\troot\t/usr/libexec/mailroom/panel\tpanel --inetd"
    );
    // /etc/services has no name for 8443: the number is the service.
    assert_eq!(find("", &line, 8443, &port_of), Found::Nothing);
    let added = add_lines("", std::slice::from_ref(&line));
    assert_eq!(find(&added, &line, 8443, &port_of), Found::Ours(true));
    let other = "8443 stream tcp nowait www-data /usr/sbin/other-panel other-panel\n";
    assert!(matches!(
        find(other, &line, 8443, &|n: &str| n.parse().ok()),
        Found::Other(_)
    ));
    let shipped = include_str!("../../../etc/inetd/inetd.conf");
    assert!(
        shipped.lines().any(|l| l
            .trim_start_matches('#')
            .split_whitespace()
            .eq(line.split_whitespace())),
        "etc/inetd/inetd.conf lacks {line:?} (commented out)"
    );
    let socket = include_str!("../../../etc/systemd/mailroom-panel.socket");
    assert!(socket.contains("\nListenStream=8443\n") && socket.contains("\nAccept=yes\n"));
    let service = include_str!("../../../etc/systemd/mailroom-panel@.service");
    assert!(service.contains("\nExecStart=/usr/libexec/mailroom/panel --inetd\n"));
}

#[test]
fn services_file_names_and_aliases() {
    assert_eq!(port_of("smtps"), Some(465));
    assert_eq!(port_of("pop-3"), Some(110));
    assert_eq!(port_of("nntp"), None);
}
