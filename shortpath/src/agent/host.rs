//! The agent's view of its own namespace's devices (synchronous: ioctls
//! and `if_nameindex`, a few microseconds, no netlink round trip).

use std::{collections::BTreeMap, io, os::fd::AsRawFd as _};

use crate::{
    dataplane::Port,
    nl::{Link, Mac},
};

/// Every device: ifindex → name.
pub fn devices() -> BTreeMap<u32, String> {
    nix::net::if_::if_nameindex()
        .map(|l| {
            l.iter()
                .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether device `ifindex` exists (one ioctl).
pub fn exists(ifindex: u32) -> bool {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes into `buf`.
    !unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) }.is_null()
}

fn no_such(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no device {name:?} in this namespace"),
    )
}

pub fn port(name: &str) -> io::Result<Port> {
    let ifindex = nix::net::if_::if_nametoindex(name).map_err(|_| no_such(name))?;
    Ok(Port {
        ifname: name.to_owned(),
        ifindex,
    })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(no_such(name));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

/// Index, MAC and MTU of device `name`.
pub fn link(name: &str) -> io::Result<Link> {
    let Port { ifindex, .. } = port(name)?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR fills the ifreq we pass, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is not an Ethernet device"),
        ));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    let mut req = ifreq(name)?;
    // SAFETY: as above, for SIOCGIFMTU.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the mtu member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok(Link {
        index: ifindex,
        name: name.to_owned(),
        mac: Mac(mac),
        mtu,
        controller: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_seen_and_unknown_devices_are_not() {
        assert_eq!(devices().get(&1).map(String::as_str), Some("lo"));
        assert_eq!(port("lo").unwrap().ifindex, 1);
        assert!(exists(1) && !exists(u32::MAX));
        let e = link("nosuchdev0").unwrap_err();
        assert!(e.to_string().contains("no device"), "{e}");
        // lo is not Ethernet: endpoints must be on veths.
        assert!(link("lo").is_err());
    }
}
