//! The address grammar's public API, as other modules and the binary use it.

use sfs::address::{
    help_text, man_address_section, parse_address, Address, AddressError, AddressType,
    ADDRESS_TYPES, OPTIONS,
};

#[test]
fn parse_display_and_errors_through_the_public_api() {
    let a: Address = "TCP-LISTEN:2222,fork".parse().unwrap();
    assert_eq!(a.to_string(), "TCP-LISTEN:2222,fork");
    assert_eq!(a.keyword(), "TCP-LISTEN");
    let e: AddressError = parse_address("TCP-LISTEN:2222,forkk").unwrap_err();
    assert_eq!(e.position(), 16);
    assert!(e.message().starts_with("unknown option 'forkk'"));
    assert_eq!(e.input(), "TCP-LISTEN:2222,forkk");
}

#[test]
fn tables_feed_help_and_man_page() {
    let help = help_text();
    let man = man_address_section();
    for t in ADDRESS_TYPES {
        assert!(help.contains(t.syntax));
        assert_eq!(AddressType::lookup(t.name), Some(t));
    }
    assert_eq!(
        man.matches(".TP\n.B ").count(),
        ADDRESS_TYPES.len() + {
            ADDRESS_TYPES
                .iter()
                .map(|t| t.options().count())
                .sum::<usize>()
        }
    );
    for o in OPTIONS {
        assert!(help.contains(&o.usage()));
    }
    if std::env::var_os("SFS_PRINT_HELP").is_some() {
        println!("{help}\n----\n{man}");
    }
}
