//! Read-only loop devices bound to a file descriptor imgbase holds.
//!
//! `mount -o loop FILE` (and `losetup`) canonicalise the file's path and
//! open it again by that path, so the file mounted may not be the file
//! that was verified. Here the loop device is configured from our own open
//! descriptor (`LOOP_CONFIGURE`, or `LOOP_SET_FD` before Linux 5.8), read
//! only, and with auto-clear: it goes away when the last user (our handle,
//! then the mount) lets go.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

const LOOP_CTL_GET_FREE: Opcode = 0x4C82;
const LOOP_SET_FD: Opcode = 0x4C00;
const LOOP_SET_STATUS64: Opcode = 0x4C04;
const LOOP_CONFIGURE: Opcode = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// `LOOP_CTL_GET_FREE` answers with the device number as the ioctl's
/// return value, which none of rustix's ready-made patterns passes on.
struct GetFree;

unsafe impl Ioctl for GetFree {
    type Output = u32;
    const IS_MUTATING: bool = false;
    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE
    }
    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        core::ptr::null_mut()
    }
    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<u32> {
        Ok(out as u32)
    }
}

/// An attached loop device; detached (auto-clear) once it is dropped and
/// nothing has it mounted.
#[derive(Debug)]
pub struct LoopDev {
    pub path: PathBuf,
    _dev: File,
}

/// Attach `file` read-only to a free loop device. `label` is what
/// `losetup -l` shows as its backing file.
pub fn attach(file: &File, label: &str) -> io::Result<LoopDev> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let mut name = [0u8; 64];
    let l = label.as_bytes();
    name[..l.len().min(63)].copy_from_slice(&l[..l.len().min(63)]);
    let info = LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset: 0,
        sizelimit: 0,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        file_name: name,
        crypt_name: [0; 64],
        encrypt_key: [0; 32],
        init: [0; 2],
    };
    // Another process may take the free device between the two calls:
    // then ask again.
    let mut last = io::Error::other("no free loop device");
    for _ in 0..16 {
        // SAFETY: GET_FREE takes no argument and returns the number.
        let n = unsafe { rustix::ioctl::ioctl(&ctl, GetFree) }?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match OpenOptions::new().read(true).open(&path) {
            Ok(d) => d,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        // SAFETY: LoopConfig is the kernel's struct loop_config, by value.
        let setter = unsafe { rustix::ioctl::Setter::<LOOP_CONFIGURE, LoopConfig>::new(config) };
        // SAFETY: the setter owns the config for the call.
        match unsafe { rustix::ioctl::ioctl(&dev, setter) } {
            Ok(()) => return Ok(LoopDev { path, _dev: dev }),
            Err(rustix::io::Errno::BUSY) => {
                last = io::Error::from(rustix::io::Errno::BUSY);
                continue;
            }
            // Before Linux 5.8: bind, then set the flags.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOTTY) => {
                // SAFETY: LOOP_SET_FD takes the descriptor as its integer argument.
                let bind = unsafe {
                    rustix::ioctl::IntegerSetter::<LOOP_SET_FD>::new_usize(file.as_raw_fd() as usize)
                };
                match unsafe { rustix::ioctl::ioctl(&dev, bind) } {
                    Ok(()) => {}
                    Err(rustix::io::Errno::BUSY) => continue,
                    Err(e) => return Err(e.into()),
                }
                // SAFETY: LoopInfo64 is the kernel's struct loop_info64.
                let status =
                    unsafe { rustix::ioctl::Setter::<LOOP_SET_STATUS64, LoopInfo64>::new(info) };
                unsafe { rustix::ioctl::ioctl(&dev, status) }?;
                return Ok(LoopDev { path, _dev: dev });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}
