//! The global allocator: the system's, except that very large blocks are reserved lazily.
//!
//! Why: parsers in dependencies size buffers from counts a peer sends. scuffle-amf0 0.2.4
//! reserves room for an AMF0 strict array's declared length before reading a single element
//! (found by our fuzz test: one RTMP command asked for 47 GB). The system allocator refuses such
//! a block and Rust then aborts the whole process, every stream with it. Blocks of 1 GiB and
//! more come from `mmap` with `MAP_NORESERVE`, which Linux's default overcommit policy grants
//! without charging them: pages cost memory only once touched, and the parser fails on the
//! missing data long before. Smaller blocks (all of liveproc's own) go to the system allocator.

// The one module allowed `unsafe`: a global allocator cannot be written without it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

pub struct LazyLarge;

const LARGE: usize = 1 << 30;
const PAGE: usize = 4096;

fn is_large(layout: &Layout) -> bool {
    cfg!(target_os = "linux") && layout.size() >= LARGE && layout.align() <= PAGE
}

#[cfg(target_os = "linux")]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(target_os = "linux")]
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` and `size` are those of a mapping `map` made.
    unsafe { libc::munmap(ptr.cast(), size) };
}

#[cfg(not(target_os = "linux"))]
unsafe fn map(_: usize) -> *mut u8 {
    unreachable!("large blocks are mapped on Linux only")
}

#[cfg(not(target_os = "linux"))]
unsafe fn unmap(_: *mut u8, _: usize) {
    unreachable!("large blocks are mapped on Linux only")
}

// SAFETY: every block is freed by the allocator that made it: `is_large` decides both ways from
// the same layout, and mmap'ed memory is page-aligned and zeroed.
unsafe impl GlobalAlloc for LazyLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            unsafe { unmap(ptr, layout.size()) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let moved = unsafe { self.alloc(new) };
        if !moved.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    /// A block far beyond this machine's memory is granted and costs nothing until used.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_huge_reservation_does_not_abort() {
        let v: Vec<u64> = Vec::with_capacity(64 << 30); // 512 GiB
        assert!(v.capacity() >= 64 << 30);
        let mut w: Vec<u8> = Vec::with_capacity(2 << 30);
        w.extend_from_slice(b"grows");
        w.shrink_to_fit();
        assert_eq!(w, b"grows");
    }
}
