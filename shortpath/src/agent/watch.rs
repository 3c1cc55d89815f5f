//! Netlink events the agent acts on: a host veth that disappears takes its
//! endpoint with it at once; route and neighbour changes on the NIC are
//! counted (the forwarding cache of the per-packet cost work follows
//! them). A periodic reconcile covers events lost to a socket overflow.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt as _;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{
    neighbour::NeighbourMessage,
    route::{RouteAttribute, RouteMessage},
    RouteNetlinkMessage,
};
use netlink_sys::{AsyncSocket as _, SocketAddr};
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH};

use super::core::Agent;

/// Netlink events seen, by kind.
pub type Events = Arc<Mutex<BTreeMap<&'static str, u64>>>;

/// How often everything is checked even without events.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

fn bump(events: &Events, kind: &'static str) {
    *events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(kind)
        .or_default() += 1;
}

fn route_oif(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn neigh_ifindex(n: &NeighbourMessage) -> u32 {
    n.header.ifindex
}

/// Subscribes to link, route and neighbour events of the agent's namespace
/// and handles them until the process ends.
pub fn spawn(agent: Arc<Mutex<Agent>>, events: Events, nic: u32) -> std::io::Result<()> {
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(conn);
    let a = agent.clone();
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(m) = msg.payload else {
                continue;
            };
            match m {
                RouteNetlinkMessage::DelLink(l) => {
                    bump(&events, "link_deleted");
                    let ifindex = l.header.index;
                    let agent = a.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        agent
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .device_gone(ifindex)
                    })
                    .await;
                    if let Ok(Err(e)) = r {
                        tracing::warn!(ifindex, error = %e, "removing the endpoint of a deleted device");
                    }
                }
                RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r)
                    if route_oif(&r) == Some(nic) =>
                {
                    bump(&events, "nic_route_changed");
                    tracing::debug!(dst = ?r.attributes.iter().find(|a| matches!(a, RouteAttribute::Destination(_))), "route via the NIC changed");
                }
                RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n)
                    if neigh_ifindex(&n) == nic =>
                {
                    bump(&events, "nic_neighbour_changed");
                }
                _ => {}
            }
        }
        tracing::warn!("netlink event stream ended; relying on the periodic reconcile");
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let agent = agent.clone();
            let r = tokio::task::spawn_blocking(move || {
                agent.lock().unwrap_or_else(|p| p.into_inner()).reconcile()
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "periodic reconcile");
            }
        }
    });
    Ok(())
}
