//! The SOCKS allow-list (`allow=`): its parser on arbitrary text, its
//! printed form, and its matcher on arbitrary names, addresses and ports.
//! Must never panic, and what parses prints as a list that parses back equal
//! (so `--help`/logs show what is enforced) and decides every query alike.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sfs::allow::AllowList;

fuzz_target!(|data: &[u8]| {
    // The first line is the list, the rest queries.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(list) = AllowList::parse(text) else {
        return;
    };
    let printed = list.to_string();
    let back = AllowList::parse(&printed)
        .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
    assert_eq!(back, list, "{text:?} printed as {printed:?}");
    let q = &data[split.min(data.len())..];
    for c in q.chunks(19) {
        let port = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        let c = &c[c.len().min(2)..];
        let ip = if c.len() >= 16 {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&c[..16]).unwrap()))
        } else if c.len() >= 4 {
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        assert_eq!(list.allows_addr(ip, port), back.allows_addr(ip, port));
        let name = String::from_utf8_lossy(c);
        assert_eq!(list.allows_name(&name, port), back.allows_name(&name, port));
        // Case does not matter to a name rule.
        assert_eq!(
            list.allows_name(&name, port),
            list.allows_name(&name.to_ascii_uppercase(), port)
        );
    }
});
