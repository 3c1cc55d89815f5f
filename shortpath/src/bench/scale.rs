//! `bench --endpoints N`: every lab node's pinned endpoint map holds `N`
//! entries during the measurements — its real ones plus synthetic ones
//! (`shortpath_dataplane::synthetic`: benchmarking addresses, stack-only,
//! never used by a packet) — and only its real ones afterwards, also when
//! the run fails or is interrupted.
//!
//! A switch to a fast mode rewrites the map with the node's real pods
//! (the synthetic entries go), so the bench fills it again after every
//! switch. The maps are read and written through their pins in bpffs, from
//! the bench's own thread: no namespace is entered, and a fill is never left
//! half done by a signal (the work is dropped at an await point, never
//! inside a fill). Removal on an interrupted or failed run is [`Drop`]'s.

use std::collections::BTreeMap;

use aya::maps::MapData;
use serde::Serialize;
use shortpath_common::endpoint::MAX_ENDPOINTS;

use super::BenchError;
use crate::{
    dataplane::{
        synthetic::{self, Census, SyntheticError},
        PinRoot,
    },
    lab::{self, Inventory},
    names::NodeName,
};

/// `--endpoints` (and the report's `--scale-endpoints`) out of range.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsArgError {
    #[error("{flag} {asked}: a node's endpoint maps are filled to at most {max} entries (MAX_ENDPOINTS, half of them in each family's map); ask for 1 to {max}")]
    OutOfRange {
        flag: &'static str,
        asked: usize,
        max: usize,
    },
}

/// Checks one map size asked with `flag`: 1 to [`MAX_ENDPOINTS`].
pub fn check_endpoints(flag: &'static str, asked: usize) -> Result<(), EndpointsArgError> {
    let max = MAX_ENDPOINTS as usize;
    if (1..=max).contains(&asked) {
        Ok(())
    } else {
        Err(EndpointsArgError::OutOfRange { flag, asked, max })
    }
}

/// Synthetic entries that bring a map with `real` entries to `asked` in
/// total; none when the real ones are that many already.
pub fn synthetic_wanted(asked: usize, real: usize) -> usize {
    asked.saturating_sub(real)
}

/// What one node's endpoint map held during the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Held {
    /// Entries in total: `real + synthetic`.
    pub entries: usize,
    pub real: usize,
    pub synthetic: usize,
}

impl From<&Census> for Held {
    fn from(c: &Census) -> Self {
        Self {
            entries: c.real + c.synthetic.len(),
            real: c.real,
            synthetic: c.synthetic.len(),
        }
    }
}

/// One node of the JSON's `params.endpoints.nodes[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeHeld {
    pub node: String,
    #[serde(flatten)]
    pub held: Held,
}

/// The JSON's `params.endpoints`: the size asked and what each node's map
/// held while the bench measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointsRun {
    pub asked: usize,
    /// Nodes whose map was filled (a node without a pinned map — a lab
    /// that has never run a fast mode — has none to fill).
    pub nodes: Vec<NodeHeld>,
    /// Synthetic entries removed after the run, all nodes together; the
    /// maps then held their real entries only.
    pub removed: usize,
}

/// The lab's endpoint maps, filled for one bench; the synthetic entries go
/// when it is finished or dropped.
pub struct EndpointFill {
    lab: String,
    asked: usize,
    root: PinRoot,
    nodes: Vec<NodeName>,
    /// Per node, as of its last fill.
    held: BTreeMap<String, Held>,
    /// Whether synthetic entries may be in the maps (removed on drop).
    armed: bool,
}

impl EndpointFill {
    pub fn new(inv: &Inventory, asked: usize) -> Self {
        Self {
            lab: inv.name.to_string(),
            asked,
            root: lab::pin_root(&inv.name),
            nodes: inv.nodes.iter().map(|n| n.name.clone()).collect(),
            held: BTreeMap::new(),
            armed: false,
        }
    }

    fn error(&self, node: &NodeName, source: impl Into<SyntheticError>) -> BenchError {
        BenchError::Endpoints {
            lab: self.lab.clone(),
            node: node.to_string(),
            source: Box::new(source.into()),
        }
    }

    fn open(
        &self,
        node: &NodeName,
    ) -> Result<Option<crate::dataplane::EndpointMaps<MapData>>, BenchError> {
        synthetic::open_pinned(&self.root, node).map_err(|e| self.error(node, e))
    }

    /// Brings every node's map to `asked` entries (after a mode switch,
    /// which takes the synthetic ones out). Nodes without a pinned map are
    /// skipped: no program reads one there.
    pub fn fill(&mut self) -> Result<(), BenchError> {
        for node in self.nodes.clone() {
            let Some(mut map) = self.open(&node)? else {
                continue;
            };
            let before = synthetic::census(&map).map_err(|e| self.error(&node, e))?;
            let first = !self.held.contains_key(node.as_str());
            if first && !before.synthetic.is_empty() {
                eprintln!(
                    "endpoints: node {node}: {} synthetic entries were left by an earlier run; counted in, and removed after",
                    before.synthetic.len()
                );
            }
            self.armed = true;
            let want = synthetic_wanted(self.asked, before.real);
            let after = synthetic::set(&mut map, want).map_err(|e| self.error(&node, e))?;
            let held = Held::from(&after);
            if first {
                let note = if held.entries > self.asked {
                    format!(" (it has {} real ones: no synthetic entry)", held.real)
                } else {
                    String::new()
                };
                eprintln!(
                    "endpoints: node {node}: endpoint map at {} entries ({} real, {} synthetic){note}",
                    held.entries, held.real, held.synthetic
                );
            }
            self.held.insert(node.to_string(), held);
        }
        Ok(())
    }

    /// Checks that every filled map still holds what it was filled to;
    /// `after` names the measurement for the error.
    pub fn verify(&self, after: &str) -> Result<(), BenchError> {
        for node in &self.nodes {
            let Some(held) = self.held.get(node.as_str()) else {
                continue;
            };
            let now = match self.open(node)? {
                Some(map) => Held::from(&synthetic::census(&map).map_err(|e| self.error(node, e))?),
                None => Held {
                    entries: 0,
                    real: 0,
                    synthetic: 0,
                },
            };
            if now != *held {
                return Err(BenchError::EndpointsChanged {
                    lab: self.lab.clone(),
                    node: node.to_string(),
                    after: after.to_owned(),
                    held: held.entries,
                    now: now.entries,
                });
            }
        }
        Ok(())
    }

    /// Takes every synthetic entry out of every node's map; returns how many
    /// went. Stops at the first error.
    fn remove(&mut self) -> Result<usize, BenchError> {
        let mut removed = 0;
        for node in self.nodes.clone() {
            let Some(mut map) = self.open(&node)? else {
                continue;
            };
            removed += synthetic::remove_all(&mut map).map_err(|e| self.error(&node, e))?;
        }
        self.armed = false;
        Ok(removed)
    }

    /// Removes the synthetic entries and says what the maps held.
    pub fn finish(mut self) -> Result<EndpointsRun, BenchError> {
        let removed = self.remove()?;
        if !self.held.is_empty() {
            eprintln!(
                "endpoints: removed {removed} synthetic entries; the maps hold their real endpoints only"
            );
        } else {
            eprintln!(
                "endpoints: no node of lab {} has a pinned endpoint map (no fast mode ran): nothing was filled",
                self.lab
            );
        }
        Ok(EndpointsRun {
            asked: self.asked,
            nodes: self
                .nodes
                .iter()
                .filter_map(|n| {
                    self.held.get(n.as_str()).map(|h| NodeHeld {
                        node: n.to_string(),
                        held: *h,
                    })
                })
                .collect(),
            removed,
        })
    }
}

impl Drop for EndpointFill {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.remove() {
            Ok(n) => eprintln!(
                "endpoints: removed {n} synthetic entries; the maps hold their real endpoints only"
            ),
            Err(e) => eprintln!(
                "warning: endpoints: {e}; `shortpath mode --name {} <its mode>` in redirect or peer rewrites the maps with the real endpoints",
                self.lab
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_1_to_the_map_size() {
        assert!(check_endpoints("--endpoints", 1).is_ok());
        assert!(check_endpoints("--endpoints", MAX_ENDPOINTS as usize).is_ok());
        let e = check_endpoints("--endpoints", 16_385)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--endpoints 16385")
                && e.contains("at most 16384")
                && e.contains("1 to 16384"),
            "{e}"
        );
        let e = check_endpoints("--scale-endpoints", 0)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--scale-endpoints 0"), "{e}");
    }

    #[test]
    fn synthetic_entries_fill_up_to_the_total_never_below_the_real_ones() {
        assert_eq!(synthetic_wanted(2000, 2), 1998);
        assert_eq!(synthetic_wanted(2, 2), 0);
        assert_eq!(synthetic_wanted(1, 2), 0);
        let c = Census {
            synthetic: (0..5).collect(),
            real: 3,
        };
        assert_eq!(
            Held::from(&c),
            Held {
                entries: 8,
                real: 3,
                synthetic: 5
            }
        );
    }

    #[test]
    fn the_json_lists_each_node_flat() {
        let r = EndpointsRun {
            asked: 100,
            nodes: vec![NodeHeld {
                node: "node-a".into(),
                held: Held {
                    entries: 100,
                    real: 2,
                    synthetic: 98,
                },
            }],
            removed: 98,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["asked"], 100);
        assert_eq!(v["nodes"][0]["node"], "node-a");
        assert_eq!(v["nodes"][0]["entries"], 100);
        assert_eq!(v["nodes"][0]["synthetic"], 98);
        assert_eq!(v["removed"], 98);
    }
}
