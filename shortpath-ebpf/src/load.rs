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
//! Every access names its header and the field's offset in it
//! (`u16_at::<OFF, _>(header)`): the offset goes into the instruction
//! (`r2 = *(u16 *)(r8 + 6)`), where a pointer to the field made the
//! compiler copy and add to the header's register before each access (two
//! instructions more per field: a quarter of from_nic's IPv4 parse), and a
//! const assertion keeps every access inside its header's type.
//!
//! Loads write a 32-bit register (`wreg`, ISA v3: build.rs): the compiler
//! then knows the upper half is zero, where a 64-bit output cast to `u32`
//! cost a shift pair per use as a `u64` (the checksum sum: eight
//! instructions).
//!
//! Values are the bytes as they lie in the packet (`from_ne_bytes`).
//! Callers pass pointers to bounds-checked headers.

use core::mem::size_of;

/// Fails the build when `len` bytes at `off` are not inside a `T`.
#[inline(always)]
const fn check<T>(off: usize, len: usize) {
    assert!(off + len <= size_of::<T>(), "access outside its header");
}

#[cfg(unaligned_packet_access)]
mod imp {
    use core::arch::asm;

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 2` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u16_at<const OFF: usize, T>(h: *const T) -> u16 {
        const { super::check::<T>(OFF, 2) };
        let v: u32;
        // SAFETY: inside the caller's bounds-checked header.
        unsafe {
            asm!("{v} = *(u16 *)({h} + {off})", v = lateout(wreg) v, h = in(reg) h,
                 off = const OFF, options(pure, readonly, nostack, preserves_flags));
            // A half-word load clears the rest of the register: no mask
            // is needed where the value is widened again.
            core::hint::assert_unchecked(v <= 0xffff);
        }
        v as u16
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 4` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u32_at<const OFF: usize, T>(h: *const T) -> u32 {
        const { super::check::<T>(OFF, 4) };
        let v: u32;
        // SAFETY: as above.
        unsafe {
            asm!("{v} = *(u32 *)({h} + {off})", v = lateout(wreg) v, h = in(reg) h,
                 off = const OFF, options(pure, readonly, nostack, preserves_flags));
        }
        v
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 2` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u16<const OFF: usize, T>(h: *mut T, v: u16) {
        const { super::check::<T>(OFF, 2) };
        // SAFETY: as above.
        unsafe {
            asm!("*(u16 *)({h} + {off}) = {v}", h = in(reg) h, v = in(reg) u64::from(v),
                 off = const OFF, options(nostack, preserves_flags));
        }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 4` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u32<const OFF: usize, T>(h: *mut T, v: u32) {
        const { super::check::<T>(OFF, 4) };
        // SAFETY: as above.
        unsafe {
            asm!("*(u32 *)({h} + {off}) = {v}", h = in(reg) h, v = in(reg) u64::from(v),
                 off = const OFF, options(nostack, preserves_flags));
        }
    }

    /// The half-word four bytes after `OFF` (the end of a MAC address).
    ///
    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u16_at_plus4<const OFF: usize, T>(h: *const T) -> u16 {
        const { super::check::<T>(OFF, 6) };
        let v: u32;
        // SAFETY: as above.
        unsafe {
            asm!("{v} = *(u16 *)({h} + {off})", v = lateout(wreg) v, h = in(reg) h,
                 off = const OFF + 4, options(pure, readonly, nostack, preserves_flags));
        }
        v as u16
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u16_plus4<const OFF: usize, T>(h: *mut T, v: u16) {
        const { super::check::<T>(OFF, 6) };
        // SAFETY: as above.
        unsafe {
            asm!("*(u16 *)({h} + {off}) = {v}", h = in(reg) h, v = in(reg) u64::from(v),
                 off = const OFF + 4, options(nostack, preserves_flags));
        }
    }
}

#[cfg(not(unaligned_packet_access))]
mod imp {
    use core::ptr::{read_unaligned, write_unaligned};

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 2` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u16_at<const OFF: usize, T>(h: *const T) -> u16 {
        const { super::check::<T>(OFF, 2) };
        // SAFETY: inside the caller's bounds-checked header.
        unsafe { read_unaligned((h as *const u8).add(OFF) as *const u16) }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 4` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u32_at<const OFF: usize, T>(h: *const T) -> u32 {
        const { super::check::<T>(OFF, 4) };
        // SAFETY: as above.
        unsafe { read_unaligned((h as *const u8).add(OFF) as *const u32) }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 2` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u16<const OFF: usize, T>(h: *mut T, v: u16) {
        const { super::check::<T>(OFF, 2) };
        // SAFETY: as above.
        unsafe { write_unaligned((h as *mut u8).add(OFF) as *mut u16, v) }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 4` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u32<const OFF: usize, T>(h: *mut T, v: u32) {
        const { super::check::<T>(OFF, 4) };
        // SAFETY: as above.
        unsafe { write_unaligned((h as *mut u8).add(OFF) as *mut u32, v) }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
    #[inline(always)]
    pub unsafe fn u16_at_plus4<const OFF: usize, T>(h: *const T) -> u16 {
        const { super::check::<T>(OFF, 6) };
        // SAFETY: as above.
        unsafe { read_unaligned((h as *const u8).add(OFF + 4) as *const u16) }
    }

    /// # Safety
    /// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
    #[inline(always)]
    pub unsafe fn set_u16_plus4<const OFF: usize, T>(h: *mut T, v: u16) {
        const { super::check::<T>(OFF, 6) };
        // SAFETY: as above.
        unsafe { write_unaligned((h as *mut u8).add(OFF + 4) as *mut u16, v) }
    }
}

pub use imp::{set_u16, set_u32, u16_at, u32_at};
use imp::{set_u16_plus4, u16_at_plus4};

/// Six bytes at `OFF` (a MAC address) read as a word and a half-word.
///
/// # Safety
/// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
#[inline(always)]
pub unsafe fn mac_at<const OFF: usize, T>(h: *const T) -> (u32, u16) {
    const { check::<T>(OFF, 6) };
    // SAFETY: the caller's six bytes are inside a bounds-checked header.
    unsafe { (u32_at::<OFF, T>(h), u16_at_plus4::<OFF, T>(h)) }
}

/// Writes six bytes at `OFF` (a MAC address) as a word and a half-word.
///
/// # Safety
/// `h` points at a bounds-checked `T`; `OFF + 6` bytes fit in it.
#[inline(always)]
pub unsafe fn set_mac<const OFF: usize, T>(h: *mut T, mac: &[u8; 6]) {
    const { check::<T>(OFF, 6) };
    // SAFETY: as above.
    unsafe {
        set_u32::<OFF, T>(h, u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]));
        set_u16_plus4::<OFF, T>(h, u16::from_ne_bytes([mac[4], mac[5]]));
    }
}
