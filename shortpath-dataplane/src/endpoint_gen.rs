//! The endpoint generation (`ENDPOINTS_GEN`), mapped into this process.
//!
//! The programs cache, per CPU, the endpoints they looked up, tagged with
//! this generation (`shortpath-ebpf/src/endpoint_cache.rs`). Every
//! userspace writer of the endpoint maps holds a [`Generation`] and bumps
//! it after each write; the map is `BPF_F_MMAPABLE`, so the bump is one
//! atomic add on shared memory, as the programs' own (`from_pod` setting
//! `FLAG_SENT_TO_STACK`). Opening for writing bumps it once as well: a
//! writer killed between its write and its bump is repaired by the next
//! writer to open the maps.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    path::Path,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::{Map, MapData, MapError};

use crate::{object::MAP_ENDPOINTS_GEN, DataplaneError};

/// `ENDPOINTS_GEN`'s one value, mapped.
pub struct Generation(NonNull<AtomicU64>);

// SAFETY: the mapping is shared memory that is only accessed atomically;
// it stays valid until `drop` unmaps it.
unsafe impl Send for Generation {}
// SAFETY: as above.
unsafe impl Sync for Generation {}

fn err(e: MapError) -> DataplaneError {
    DataplaneError::map(MAP_ENDPOINTS_GEN, e)
}

impl Generation {
    /// The generation of a loaded object (its `ENDPOINTS_GEN` map), bumped.
    pub fn of(map: &Map) -> Result<Self, DataplaneError> {
        let g = Self::of_unbumped(map)?;
        g.bump();
        Ok(g)
    }

    /// The generation pinned in `dir` (a node's maps directory), bumped.
    pub fn pinned(dir: &Path) -> Result<Self, DataplaneError> {
        let g = Self::pinned_unbumped(dir)?;
        g.bump();
        Ok(g)
    }

    /// The generation of a loaded object, not bumped: for the next-hop
    /// cache's writers, which bump after each write.
    pub fn of_unbumped(map: &Map) -> Result<Self, DataplaneError> {
        // The object defines it as an array: anything else is a build bug.
        let Map::Array(md) = map else {
            return Err(err(MapError::InvalidMapType { map_type: 0 }));
        };
        Self::map(md)
    }

    /// The generation pinned in `dir`, not bumped (see [`of_unbumped`](Self::of_unbumped)).
    pub fn pinned_unbumped(dir: &Path) -> Result<Self, DataplaneError> {
        let md = MapData::from_pin(dir.join(MAP_ENDPOINTS_GEN)).map_err(err)?;
        Self::of_unbumped(&Map::Array(md))
    }

    fn map(md: &MapData) -> Result<Self, DataplaneError> {
        // SAFETY: a fresh shared mapping of the map's value area (one u64 at
        // offset 0, page-aligned); checked for failure below. It outlives
        // the descriptor.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size_of::<u64>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                md.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(err(MapError::IoError(io::Error::last_os_error())));
        }
        let p = NonNull::new(p.cast::<AtomicU64>()).expect("mmap never maps address 0");
        Ok(Self(p))
    }

    /// After a write: every cached endpoint of an older generation is gone.
    pub fn bump(&self) {
        // SAFETY: mapped for as long as `self` lives.
        unsafe { self.0.as_ref() }.fetch_add(1, Ordering::SeqCst);
    }

    /// The generation now (it only grows).
    pub fn get(&self) -> u64 {
        // SAFETY: as above.
        unsafe { self.0.as_ref() }.load(Ordering::SeqCst)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer referenced.
        unsafe { libc::munmap(self.0.as_ptr().cast(), size_of::<u64>()) };
    }
}
