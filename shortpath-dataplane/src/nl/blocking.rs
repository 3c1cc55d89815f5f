//! Synchronous rtnetlink requests in the calling thread's namespace, for
//! code that already runs on a namespace thread without a runtime (the
//! dataplane). Only what that code needs: tc filters, the dumps the
//! next-hop cache is planned from, and managed neighbour entries.

use std::io;

use netlink_packet_route::{
    tc::{TcAttribute, TcFilterBpfOption, TcHandle, TcMessage, TcOption},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};

/// Which TC hook of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcHook {
    Ingress,
    Egress,
}

impl TcHook {
    fn parent(self) -> TcHandle {
        TcHandle {
            major: 0xffff,
            minor: match self {
                TcHook::Ingress => TcHandle::MIN_INGRESS,
                TcHook::Egress => TcHandle::MIN_EGRESS,
            },
        }
    }
}

/// A cls_bpf filter as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfFilter {
    pub priority: u16,
    pub handle: u32,
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
    /// The header to delete exactly this filter with.
    header: netlink_packet_route::tc::TcHeader,
}

fn request(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut out = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            if len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zero-length netlink message",
                ));
            }
            offset += len;
            match msg.payload {
                // A dump that failed part-way says so in its DONE message.
                NetlinkPayload::Done(d) if d.code != 0 => {
                    return Err(io::Error::from_raw_os_error(d.code.abs()))
                }
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => match e.code {
                    None => return Ok(out),
                    Some(code) => return Err(io::Error::from_raw_os_error(-code.get())),
                },
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
        }
        // A reply to a non-dump request is one message (or an ACK).
        if flags & NLM_F_DUMP != NLM_F_DUMP && !out.is_empty() {
            return Ok(out);
        }
    }
}

/// The cls_bpf filters on `hook` of device `ifindex`. A device without a
/// clsact qdisc has none.
pub fn bpf_filters(ifindex: u32, hook: TcHook) -> io::Result<Vec<BpfFilter>> {
    let mut m = TcMessage::default();
    m.header.index = ifindex as i32;
    m.header.parent = hook.parent();
    let replies = match request(
        RouteNetlinkMessage::GetTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_DUMP,
    ) {
        Ok(r) => r,
        // No qdisc to hold filters, or the device is gone: nothing attached.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENODEV | libc::ENOENT)
            ) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for r in replies {
        let RouteNetlinkMessage::NewTrafficFilter(f) = r else {
            continue;
        };
        if f.header.index != ifindex as i32 {
            continue;
        }
        let is_bpf = f
            .attributes
            .iter()
            .any(|a| matches!(a, TcAttribute::Kind(k) if k == "bpf"));
        if !is_bpf {
            continue;
        }
        let mut filter = BpfFilter {
            priority: (f.header.info >> 16) as u16,
            handle: u32::from(f.header.handle),
            prog_id: None,
            prog_name: None,
            header: f.header.clone(),
        };
        for a in &f.attributes {
            if let TcAttribute::Options(opts) = a {
                for o in opts {
                    match o {
                        TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => filter.prog_id = Some(*id),
                        TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => {
                            filter.prog_name = Some(n.clone())
                        }
                        _ => {}
                    }
                }
            }
        }
        // The dump also lists the (handle 0) anchor of each priority.
        if filter.handle != 0 {
            out.push(filter);
        }
    }
    Ok(out)
}

/// Deletes exactly `filter`; gone already is fine.
pub fn delete_filter(filter: &BpfFilter) -> io::Result<()> {
    let mut m = TcMessage::default();
    m.header = filter.header.clone();
    let mut kind = vec![TcAttribute::Kind("bpf".into())];
    m.attributes.append(&mut kind);
    match request(
        RouteNetlinkMessage::DelTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_ACK,
    ) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
        r => r.map(drop),
    }
}

/// A dump of both families: `ask` builds the request for one, `pick`
/// keeps the replies wanted (in the calling thread's namespace).
fn dump_both<T>(
    ask: impl Fn(AddressFamily) -> RouteNetlinkMessage,
    pick: impl Fn(RouteNetlinkMessage) -> Option<T>,
) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        out.extend(
            request(ask(family), NLM_F_REQUEST | NLM_F_DUMP)?
                .into_iter()
                .filter_map(&pick),
        );
    }
    Ok(out)
}

/// Every route of every table, both families.
pub fn routes() -> io::Result<Vec<netlink_packet_route::route::RouteMessage>> {
    dump_both(
        |family| {
            let mut m = netlink_packet_route::route::RouteMessage::default();
            m.header.address_family = family;
            RouteNetlinkMessage::GetRoute(m)
        },
        |r| match r {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        },
    )
}

/// Every neighbour entry, both families.
pub fn neighbours() -> io::Result<Vec<netlink_packet_route::neighbour::NeighbourMessage>> {
    dump_both(
        |family| {
            let mut m = netlink_packet_route::neighbour::NeighbourMessage::default();
            m.header.family = family;
            RouteNetlinkMessage::GetNeighbour(m)
        },
        |r| match r {
            RouteNetlinkMessage::NewNeighbour(n) => Some(n),
            _ => None,
        },
    )
}

/// Has the kernel manage the neighbour entry of `addr` on `ifindex`
/// (`NTF_EXT_MANAGED`): created if missing, its address and state kept if
/// it has them (`ip neigh replace ADDR dev DEV managed`).
pub fn manage_neighbour(ifindex: u32, addr: std::net::IpAddr) -> io::Result<()> {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourMessage, NeighbourState,
    };
    let mut m = NeighbourMessage::default();
    m.header.family = match addr {
        std::net::IpAddr::V4(_) => AddressFamily::Inet,
        std::net::IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.ifindex = ifindex;
    m.header.state = NeighbourState::None;
    m.attributes = vec![
        NeighbourAttribute::Destination(match addr {
            std::net::IpAddr::V4(a) => NeighbourAddress::Inet(a),
            std::net::IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }),
        NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed),
    ];
    request(
        RouteNetlinkMessage::NewNeighbour(m),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )
    .map(drop)
}

/// Every policy routing rule, both families.
pub fn rules() -> io::Result<Vec<netlink_packet_route::rule::RuleMessage>> {
    dump_both(
        |family| {
            let mut m = netlink_packet_route::rule::RuleMessage::default();
            m.header.family = family;
            RouteNetlinkMessage::GetRule(m)
        },
        |r| match r {
            RouteNetlinkMessage::NewRule(r) => Some(r),
            _ => None,
        },
    )
}

/// The device `ifindex`.
pub fn link(ifindex: u32) -> io::Result<netlink_packet_route::link::LinkMessage> {
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = ifindex;
    request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST)?
        .into_iter()
        .find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
}
