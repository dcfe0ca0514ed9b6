//! The io_uring backend: every `unsafe` block of the crate lives here.
//!
//! Rules: a submission queue entry points at a buffer that outlives the operation. Each function
//! below submits and then waits for every completion it submitted before returning, so buffers
//! borrowed for the call are valid for the whole operation. A ring is per thread (the flusher's,
//! the segment preparer's, and that of each caller that flushes on its own thread), so no ring
//! is ever shared or locked.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, opcode, squeue, types};

const RING_ENTRIES: u32 = 8;
const WRITE_TAG: u64 = 1;
const FSYNC_TAG: u64 = 2;

thread_local! {
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// Checks that io_uring can be set up and runs a no-op through it. Fails under seccomp profiles
/// that block `io_uring_setup`, with `kernel.io_uring_disabled=2`, or on kernels without it.
pub(crate) fn probe() -> io::Result<()> {
    let mut ring = IoUring::new(2)?;
    let nop = opcode::Nop::new().build().user_data(7);
    // SAFETY: a no-op references no memory.
    unsafe {
        ring.submission()
            .push(&nop)
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    }
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("io_uring returned no completion"))?;
    if cqe.result() < 0 {
        return Err(io::Error::from_raw_os_error(-cqe.result()));
    }
    Ok(())
}

/// Writes `buf` at `offset` and fdatasyncs, linked in one submission. Short writes are
/// continued; an error from either step is returned.
pub(crate) fn write_sync(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(IoUring::new(RING_ENTRIES)?);
        }
        let Some(ring) = slot.as_mut() else {
            return Err(io::Error::other("io_uring ring missing"));
        };
        let result = write_sync_on(ring, file, buf, offset);
        if result.is_err() {
            // Never reuse a ring that may hold stray completions.
            *slot = None;
        }
        result
    })
}

fn write_sync_on(ring: &mut IoUring, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let fd = types::Fd(file.as_raw_fd());
    let mut done = 0usize;
    loop {
        let rest = &buf[done..];
        // A single write is capped so its length fits the SQE's u32.
        let len = rest.len().min(1 << 30);
        let write = opcode::Write::new(fd, rest.as_ptr(), len as u32)
            .offset(offset + done as u64)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(WRITE_TAG);
        let fsync = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(FSYNC_TAG);
        // SAFETY: `rest` borrows `buf`, which outlives this function; we wait below for both
        // completions (the write and the linked fsync) before returning or reusing the ring.
        unsafe {
            let mut sq = ring.submission();
            sq.push(&write)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            sq.push(&fsync)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        let mut got = 0;
        let (mut write_res, mut fsync_res) = (None, None);
        while got < 2 {
            match ring.submit_and_wait(2 - got) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for cqe in ring.completion() {
                got += 1;
                match cqe.user_data() {
                    WRITE_TAG => write_res = Some(cqe.result()),
                    FSYNC_TAG => fsync_res = Some(cqe.result()),
                    _ => return Err(io::Error::other("unexpected io_uring completion")),
                }
            }
        }
        let written = write_res.ok_or_else(|| io::Error::other("missing write completion"))?;
        if written < 0 {
            return Err(io::Error::from_raw_os_error(-written));
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "io_uring wrote 0 bytes",
            ));
        }
        done += written as usize;
        let synced = fsync_res.ok_or_else(|| io::Error::other("missing fsync completion"))?;
        if done < buf.len() {
            // A short write breaks the link and cancels the fsync: continue with the rest.
            continue;
        }
        if synced < 0 {
            return Err(io::Error::from_raw_os_error(-synced));
        }
        return Ok(());
    }
}
