//! Netlink events the agent acts on: a host veth that disappears takes its
//! endpoint with it at once; route, rule, neighbour (on the NIC) and NIC
//! changes bring the next-hop cache back in step (see
//! `shortpath_dataplane::next_hops`), coalesced: events that arrive while
//! a sync runs are covered by one more. A periodic reconcile covers events
//! lost to a socket overflow.

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
use rtnetlink::constants::{
    RTMGRP_IPV4_ROUTE, RTMGRP_IPV4_RULE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH,
};
use serde::Serialize;
use tokio::sync::Notify;

use super::core::Agent;

/// `RTNLGRP_IPV6_RULE` (19) as a group bit (the constants stop at IPv4).
const RTMGRP_IPV6_RULE: u32 = 1 << (19 - 1);

/// The next-hop cache's last sync, for status and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NextHopSync {
    /// Syncs done (each covers every event before it started).
    pub syncs: u64,
    /// Entries written and removed, over all syncs.
    pub written: u64,
    pub removed: u64,
    /// Cached routes after the last sync.
    pub cached: usize,
    /// Why nothing is cached, if so.
    pub disabled: Option<&'static str>,
    /// How long the last sync took (netlink dumps + map writes), µs.
    pub last_us: u64,
    pub last_error: Option<String>,
    /// Gateways' neighbour entries made kernel-managed, over all syncs.
    pub gateways_managed: u64,
    /// Why the last sync could not make them managed, if it could not
    /// (the cache is right, but blind to unannounced MAC changes).
    pub gateways_unmanaged: Option<String>,
}

/// Wakes the next-hop syncer; shared by the event loop and the periodic
/// reconcile.
#[derive(Clone, Default)]
pub struct NextHops {
    wake: Arc<Notify>,
    pub state: Arc<Mutex<NextHopSync>>,
}

impl NextHops {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn snapshot(&self) -> NextHopSync {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs a sync after every wake-up, one at a time; wake-ups during a
    /// sync collapse into the next one.
    fn spawn_syncer(&self, agent: Arc<Mutex<Agent>>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.wake.notified().await;
                let agent = agent.clone();
                let started = std::time::Instant::now();
                let r = tokio::task::spawn_blocking(move || {
                    // A clone: the agent's lock is held only to take it.
                    let node = agent.lock().unwrap_or_else(|p| p.into_inner()).node.clone();
                    node.sync_next_hops()
                })
                .await;
                let mut st = me.state.lock().unwrap_or_else(|p| p.into_inner());
                st.syncs += 1;
                st.last_us = started.elapsed().as_micros() as u64;
                match r {
                    Ok(Ok((plan, (written, removed), managed))) => {
                        match managed {
                            Ok(n) => {
                                st.gateways_managed += n as u64;
                                st.gateways_unmanaged = None;
                            }
                            Err(why) => {
                                // Once per cause, not at every sync.
                                if st.gateways_unmanaged.as_deref() != Some(why.as_str()) {
                                    tracing::warn!("{why}");
                                }
                                st.gateways_unmanaged = Some(why);
                            }
                        }
                        st.written += written as u64;
                        st.removed += removed as u64;
                        st.cached = plan.cached();
                        st.disabled = plan.disabled;
                        st.last_error = None;
                        if written + removed > 0 {
                            tracing::info!(
                                written,
                                removed,
                                cached = plan.cached(),
                                disabled = plan.disabled,
                                took_us = st.last_us,
                                "next-hop cache updated"
                            );
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "next-hop cache sync");
                        st.last_error = Some(e.to_string());
                    }
                    Err(e) => st.last_error = Some(e.to_string()),
                }
            }
        });
    }
}

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
pub fn spawn(
    agent: Arc<Mutex<Agent>>,
    events: Events,
    next_hops: NextHops,
    nic: u32,
) -> std::io::Result<()> {
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK
        | RTMGRP_NEIGH
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_ROUTE
        | RTMGRP_IPV4_RULE
        | RTMGRP_IPV6_RULE;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(conn);
    next_hops.spawn_syncer(agent.clone());
    // Whatever changed before the subscription.
    next_hops.wake();
    let nh = next_hops.clone();
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
                // Any route may be (or cover) a route of the cache.
                RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                    if route_oif(&r) == Some(nic) {
                        bump(&events, "nic_route_changed");
                        tracing::debug!(dst = ?r.attributes.iter().find(|a| matches!(a, RouteAttribute::Destination(_))), "route via the NIC changed");
                    } else {
                        bump(&events, "route_changed");
                    }
                    nh.wake();
                }
                RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n)
                    if neigh_ifindex(&n) == nic =>
                {
                    bump(&events, "nic_neighbour_changed");
                    nh.wake();
                }
                RouteNetlinkMessage::NewRule(_) | RouteNetlinkMessage::DelRule(_) => {
                    bump(&events, "rule_changed");
                    nh.wake();
                }
                // MAC, MTU, up/down of the NIC.
                RouteNetlinkMessage::NewLink(l) if l.header.index == nic => {
                    bump(&events, "nic_changed");
                    nh.wake();
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
            next_hops.wake();
        }
    });
    Ok(())
}
