//! The man page's ADDRESS TYPES section is generated from the address table;
//! this test keeps `man/sfs.1` in step (`SFS_UPDATE_MAN=1 cargo test --test man`
//! rewrites it) and checks that the page renders without warnings.

const BEGIN: &str = ".\\\" BEGIN GENERATED ADDRESS TYPES\n";
const END: &str = ".\\\" END GENERATED ADDRESS TYPES\n";

#[test]
fn man_page_address_section_matches_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/sfs.1");
    let page = std::fs::read_to_string(path).unwrap();
    let (a, b) = (
        page.find(BEGIN).expect("begin marker"),
        page.find(END).expect("end marker"),
    );
    let current = &page[a + BEGIN.len()..b];
    let generated = sfs::address::man_address_section();
    if current != generated {
        if std::env::var_os("SFS_UPDATE_MAN").is_some() {
            let new = format!("{}{BEGIN}{generated}{}", &page[..a], &page[b..]);
            std::fs::write(path, new).unwrap();
        } else {
            panic!("man/sfs.1 is out of date with the address table; run SFS_UPDATE_MAN=1 cargo test --test man");
        }
    }
}

#[test]
fn man_page_renders_cleanly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/sfs.1");
    let Ok(out) = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z", path])
        .output()
    else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "groff is required under CI=true (apt-get install groff)"
        );
        eprintln!("SKIPPED: groff is not installed (apt-get install groff)");
        return;
    };
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "groff warnings:\n{warnings}"
    );
}

/// Every long flag `sfs --help` lists is described in the man page.
#[test]
fn man_page_describes_every_flag() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/sfs.1");
    let page = std::fs::read_to_string(path).unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_sfs"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| l.split([' ', ',', '=', '<']))
        // `--verbose...`: clap marks a repeatable flag.
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.contains(&"--stats-json"), "{help}");
    for flag in flags {
        let in_man = flag.replace('-', "\\-");
        assert!(page.contains(&in_man), "{flag} is not in man/sfs.1");
    }
}
