//! Packet words read and written as one instruction each.
//!
//! Headers sit at offsets the compiler cannot prove aligned (IPv4 follows
//! the 14-byte Ethernet header), so `read_unaligned` of a `u32` becomes
//! four byte loads, three shifts and three ors. Where the kernel has
//! efficient unaligned access (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`;
//! the `unaligned_packet_access` cfg, set by shortpath-dataplane/build.rs)
//! the verifier accepts unaligned *packet* accesses, and these helpers
//! issue the one load or store in inline assembly. (LLVM's
//! `allows-misaligned-mem-access` would do that everywhere, but it also
//! emits unaligned *stack* accesses, which every verifier refuses.) On
//! other architectures they fall back to byte-wise accesses.
//!
//! Loads write a 32-bit register (`wreg`, ISA v3: build.rs): the compiler
//! then knows the upper half is zero, where a 64-bit output cast to `u32`
//! cost a shift pair per use as a `u64` (the checksum sum: eight
//! instructions).
//!
//! Values are the bytes as they lie in the packet (`from_ne_bytes`).
//! Callers pass pointers inside a bounds-checked header.

#[cfg(unaligned_packet_access)]
mod imp {
    use core::arch::asm;

    /// # Safety
    /// `p` points at 2 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn u16_at(p: *const u8) -> u16 {
        let v: u32;
        // SAFETY: the caller's pointer is inside a bounds-checked header.
        unsafe {
            asm!("{v} = *(u16 *)({p} + 0)", v = lateout(wreg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
        v as u16
    }

    /// # Safety
    /// `p` points at 4 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn u32_at(p: *const u8) -> u32 {
        let v: u32;
        // SAFETY: as above.
        unsafe {
            asm!("{v} = *(u32 *)({p} + 0)", v = lateout(wreg) v, p = in(reg) p,
                 options(pure, readonly, nostack, preserves_flags));
        }
        v
    }

    /// # Safety
    /// `p` points at 2 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn set_u16(p: *mut u8, v: u16) {
        // SAFETY: as above.
        unsafe {
            asm!("*(u16 *)({p} + 0) = {v}", p = in(reg) p, v = in(reg) u64::from(v),
                 options(nostack, preserves_flags));
        }
    }

    /// # Safety
    /// `p` points at 4 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn set_u32(p: *mut u8, v: u32) {
        // SAFETY: as above.
        unsafe {
            asm!("*(u32 *)({p} + 0) = {v}", p = in(reg) p, v = in(reg) u64::from(v),
                 options(nostack, preserves_flags));
        }
    }
}

#[cfg(not(unaligned_packet_access))]
mod imp {
    use core::ptr::{read_unaligned, write_unaligned};

    /// # Safety
    /// `p` points at 2 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn u16_at(p: *const u8) -> u16 {
        // SAFETY: the caller's pointer is inside a bounds-checked header.
        unsafe { read_unaligned(p as *const u16) }
    }

    /// # Safety
    /// `p` points at 4 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn u32_at(p: *const u8) -> u32 {
        // SAFETY: as above.
        unsafe { read_unaligned(p as *const u32) }
    }

    /// # Safety
    /// `p` points at 2 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn set_u16(p: *mut u8, v: u16) {
        // SAFETY: as above.
        unsafe { write_unaligned(p as *mut u16, v) }
    }

    /// # Safety
    /// `p` points at 4 bytes inside a bounds-checked header.
    #[inline(always)]
    pub unsafe fn set_u32(p: *mut u8, v: u32) {
        // SAFETY: as above.
        unsafe { write_unaligned(p as *mut u32, v) }
    }
}

pub use imp::{set_u16, set_u32, u16_at, u32_at};

/// Six bytes (a MAC address) read as a word and a half-word.
///
/// # Safety
/// `p` points at 6 bytes inside a bounds-checked header.
#[inline(always)]
pub unsafe fn mac_at(p: *const u8) -> (u32, u16) {
    // SAFETY: the caller's six bytes are inside a bounds-checked header.
    unsafe { (u32_at(p), u16_at(p.add(4))) }
}

/// Writes six bytes (a MAC address) as a word and a half-word.
///
/// # Safety
/// `p` points at 6 bytes inside a bounds-checked header.
#[inline(always)]
pub unsafe fn set_mac(p: *mut u8, mac: &[u8; 6]) {
    // SAFETY: as above.
    unsafe {
        set_u32(p, u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]));
        set_u16(p.add(4), u16::from_ne_bytes([mac[4], mac[5]]));
    }
}
