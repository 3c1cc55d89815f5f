//! rtnetlink in a chosen network namespace, in rtnetlink's own style
//! (handle → builder → execute), with errors that name the namespace and
//! the object.
//!
//! The netlink socket is created on a thread inside the namespace and then
//! served by the caller's tokio runtime: a netlink socket stays bound to
//! the namespace it was created in.

pub mod blocking;

use std::{
    net::IpAddr,
    os::fd::{AsRawFd, IntoRawFd, OwnedFd},
};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags},
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage},
    route::RouteProtocol,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::netns::{self, Netns, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum NlError {
    #[error("netns {netns}: {what}: {source}")]
    Request {
        netns: String,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netns {netns}: no interface named {name}")]
    NoSuchLink { netns: String, name: String },
    #[error("netns {netns}: cannot open a netlink socket: {source}")]
    Socket {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl NlError {
    /// The kernel answered EEXIST.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| -c.get()),
            _ => None,
        }
    }
}

/// A MAC address, shown and serialized as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut m = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(serde::de::Error::custom(format!("bad MAC {s:?}")));
        }
        for (b, p) in m.iter_mut().zip(parts) {
            *b = u8::from_str_radix(p, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(Mac(m))
    }
}

/// A network interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Mac,
    pub mtu: u32,
    pub controller: Option<u32>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Self {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            mac: Mac::default(),
            mtu: 0,
            controller: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(mac) if mac.len() == 6 => link.mac.0.copy_from_slice(mac),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(c) => link.controller = Some(*c),
                _ => {}
            }
        }
        link
    }
}

/// An rtnetlink handle bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    netns: String,
}

impl Netlink {
    /// Connects to `ns`. Must be called within a tokio runtime.
    pub async fn connect(ns: &Netns) -> Result<Self, NlError> {
        let name = ns.name().to_owned();
        let fd: OwnedFd = netns::run_in(ns, || {
            Socket::new(NETLINK_ROUTE).map(|s| {
                // SAFETY: into_raw_fd hands over the only owner of the fd.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s.into_raw_fd()) }
            })
        })
        .await?
        .map_err(|source| NlError::Socket {
            netns: name.clone(),
            source,
        })?;
        Ok(Self::from_fd(fd, name))
    }

    /// Connects to the namespace open at `fd` (a path a runtime gave, such
    /// as `/proc/<pid>/ns/net`), named `label` in messages. The socket is
    /// made on a short-lived thread that enters the namespace; the caller's
    /// threads never change namespace.
    pub async fn connect_fd(label: &str, fd: &OwnedFd) -> Result<Self, NlError> {
        let dup = fd.try_clone().map_err(|source| NlError::Socket {
            netns: label.to_owned(),
            source,
        })?;
        let sock = std::thread::spawn(move || -> std::io::Result<OwnedFd> {
            netns::enter_in_child(&dup)?;
            Socket::new(NETLINK_ROUTE).map(|s| {
                // SAFETY: into_raw_fd hands over the only owner of the fd.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s.into_raw_fd()) }
            })
        })
        .join()
        .map_err(|_| NlError::Socket {
            netns: label.to_owned(),
            source: std::io::Error::other("the namespace thread panicked"),
        })?
        .map_err(|source| NlError::Socket {
            netns: label.to_owned(),
            source,
        })?;
        Ok(Self::from_fd(sock, label.to_owned()))
    }

    /// Connects in the caller's own namespace.
    pub fn here(label: &str) -> Result<Self, NlError> {
        let s = Socket::new(NETLINK_ROUTE).map_err(|source| NlError::Socket {
            netns: label.to_owned(),
            source,
        })?;
        // SAFETY: into_raw_fd hands over the only owner of the fd.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s.into_raw_fd()) };
        Ok(Self::from_fd(fd, label.to_owned()))
    }

    fn from_fd(fd: OwnedFd, netns: String) -> Self {
        // SAFETY: `fd` is an open netlink socket we own; TokioSocket takes it.
        let socket =
            unsafe { <TokioSocket as std::os::fd::FromRawFd>::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Self { handle, netns }
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The underlying rtnetlink handle, for requests this wrapper lacks.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NlError + '_ {
        let what = what.into();
        move |source| NlError::Request {
            netns: self.netns.clone(),
            what,
            source,
        }
    }

    pub async fn links(&self) -> Result<Vec<Link>, NlError> {
        self.handle
            .link()
            .get()
            .execute()
            .map_ok(|m| Link::from_message(&m))
            .try_collect()
            .await
            .map_err(self.err("list links"))
    }

    pub async fn link(&self, name: &str) -> Result<Link, NlError> {
        let found: Result<Vec<_>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .map_ok(|m| Link::from_message(&m))
            .try_collect()
            .await;
        match found {
            Ok(mut v) if !v.is_empty() => Ok(v.remove(0)),
            Ok(_) => Err(self.no_such(name)),
            Err(e) => {
                let e = self.err(format!("get link {name}"))(e);
                if e.errno() == Some(libc::ENODEV) {
                    Err(self.no_such(name))
                } else {
                    Err(e)
                }
            }
        }
    }

    fn no_such(&self, name: &str) -> NlError {
        NlError::NoSuchLink {
            netns: self.netns.clone(),
            name: name.to_owned(),
        }
    }

    /// Creates a veth pair `name` ↔ `peer`; the peer is created directly in
    /// the namespace `peer_ns` when given (no rename dance). `index` asks for
    /// a specific ifindex for `name` (0: the kernel picks).
    pub async fn add_veth(
        &self,
        name: &str,
        index: u32,
        peer: &str,
        peer_ns: Option<&OwnedFd>,
        mtu: u32,
    ) -> Result<(), NlError> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_owned())
            .mtu(mtu);
        if let Some(fd) = peer_ns {
            peer_msg = peer_msg.setns_by_fd(fd.as_raw_fd());
        }
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_owned())
            .index(index)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(self.err(format!("add veth {name} (peer {peer})")))
    }

    /// A bridge without STP and with bridge netfilter as asked.
    pub async fn add_bridge(&self, name: &str, mtu: u32, netfilter: bool) -> Result<(), NlError> {
        let msg = LinkBridge::new(name)
            .mtu(mtu)
            .nf_call_iptables(netfilter)
            .nf_call_ip6tables(netfilter)
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(self.err(format!("add bridge {name}")))
    }

    pub async fn set_controller(&self, index: u32, controller: u32) -> Result<(), NlError> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(controller)
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(self.err(format!("enslave ifindex {index} to ifindex {controller}")))
    }

    pub async fn set_up(&self, index: u32) -> Result<(), NlError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(self.err(format!("set ifindex {index} up")))
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NlError> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(self.err(format!("set MAC of ifindex {index}")))
    }

    pub async fn del_link(&self, index: u32) -> Result<(), NlError> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(self.err(format!("delete ifindex {index}")))
    }

    /// Adds an address; IPv6 addresses skip duplicate address detection so
    /// they are usable at once.
    pub async fn add_address(&self, index: u32, net: IpNet) -> Result<(), NlError> {
        self.add_address_scoped(index, net, false).await
    }

    /// Adds an address with link scope (never picked as the source for
    /// other destinations), without DAD.
    pub async fn add_link_address(&self, index: u32, net: IpNet) -> Result<(), NlError> {
        self.add_address_scoped(index, net, true).await
    }

    async fn add_address_scoped(&self, index: u32, net: IpNet, link: bool) -> Result<(), NlError> {
        let mut req = self
            .handle
            .address()
            .add(index, net.addr(), net.prefix_len());
        if link {
            req.message_mut().header.scope = netlink_packet_route::address::AddressScope::Link;
        }
        if net.addr().is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let what = if link {
            "add link address"
        } else {
            "add address"
        };
        req.execute()
            .await
            .map_err(self.err(format!("{what} {net} to ifindex {index}")))
    }

    pub async fn addresses(&self, index: u32) -> Result<Vec<IpAddr>, NlError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(self.err(format!("list addresses of ifindex {index}")))?;
        Ok(msgs
            .iter()
            .flat_map(|m| m.attributes.iter())
            .filter_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
            .collect())
    }

    /// Adds a route to `dest` out of device `index`, via `gateway` or, if
    /// none, directly on the link (scope link).
    pub async fn add_route_dev(
        &self,
        dest: IpNet,
        gateway: Option<IpAddr>,
        index: u32,
    ) -> Result<(), NlError> {
        let what = match gateway {
            Some(g) => format!("add route {dest} via {g} dev ifindex {index}"),
            None => format!("add route {dest} dev ifindex {index}"),
        };
        let bad = |e: String| NlError::Request {
            netns: self.netns.clone(),
            what: what.clone(),
            source: rtnetlink::Error::InvalidNla(e),
        };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dest.addr(), dest.prefix_len())
            .map_err(|e| bad(e.to_string()))?
            .output_interface(index)
            .protocol(RouteProtocol::Static);
        b = match gateway {
            Some(g) => b.gateway(g).map_err(|e| bad(e.to_string()))?,
            None => b.scope(netlink_packet_route::route::RouteScope::Link),
        };
        self.handle
            .route()
            .add(b.build())
            .execute()
            .await
            .map_err(self.err(what))
    }

    /// Adds a route to `dest` via `gateway`.
    pub async fn add_route(&self, dest: IpNet, gateway: IpAddr) -> Result<(), NlError> {
        let what = format!("add route {dest} via {gateway}");
        let msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dest.addr(), dest.prefix_len())
            .and_then(|b| b.gateway(gateway))
            .map_err(|e| NlError::Request {
                netns: self.netns.clone(),
                what: what.clone(),
                source: rtnetlink::Error::InvalidNla(e.to_string()),
            })?
            .protocol(RouteProtocol::Static)
            .build();
        self.handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(self.err(what))
    }
}
