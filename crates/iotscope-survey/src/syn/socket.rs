//! The two AF_PACKET sockets of SYN mode: one sends whole frames in batches
//! (`sendmmsg`), one receives IPv4 frames of the interface through a
//! classic BPF filter that lets only TCP to our address and probe ports in.
//! This is the only unsafe code of the survey; each call is commented.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::frame::{FRAME_LEN, SPORT_BASE};
use super::SynError;

const ETH_P_IP: u16 = 0x0800;
/// `sll_pkttype` of frames we sent ourselves (seen on loopback).
const PACKET_OUTGOING: u8 = 4;

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn interface_index(interface: &str) -> Result<i32, SynError> {
    let name = std::ffi::CString::new(interface)
        .map_err(|_| SynError::Interface(format!("bad interface name {interface:?}")))?;
    // SAFETY: name is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        return Err(SynError::Interface(format!(
            "no interface named {interface:?}"
        )));
    }
    Ok(idx as i32)
}

fn packet_socket(protocol: u16) -> Result<OwnedFd, SynError> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as i32,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => SynError::Permission,
            _ => SynError::Io(io::Error::new(e.kind(), format!("packet socket: {e}"))),
        });
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16) -> Result<(), SynError> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the given length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r != 0 {
        return Err(SynError::Io(last_error("bind packet socket")));
    }
    Ok(())
}

fn set_opt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T, what: &str) -> io::Result<()> {
    // SAFETY: value points at a T of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r != 0 {
        return Err(last_error(what));
    }
    Ok(())
}

/// Sends probe frames on one interface.
///
/// On Ethernet the frames go out whole through a packet socket (no routing
/// or neighbour lookup per probe). On loopback that cannot work: a packet
/// injected there has no route attached, and the kernel's input route check
/// drops anything from 127/8 as a martian source. So on loopback the IPv4
/// part goes through a raw IP socket with our own header (IP_HDRINCL),
/// which the kernel routes and loops back like any local packet.
pub struct Sender {
    fd: OwnedFd,
    ip_only: bool,
}

impl Sender {
    /// A send-only socket for `interface` (`loopback`: a raw IP socket).
    pub fn open(interface: &str, loopback: bool) -> Result<Sender, SynError> {
        if loopback {
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_RAW,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => SynError::Permission,
                    _ => SynError::Io(io::Error::new(e.kind(), format!("raw socket: {e}"))),
                });
            }
            // SAFETY: fd is a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // IPPROTO_RAW implies IP_HDRINCL; said explicitly for the reader.
            set_opt(&fd, libc::IPPROTO_IP, libc::IP_HDRINCL, &1i32, "IP_HDRINCL")
                .map_err(SynError::Io)?;
            return Ok(Sender { fd, ip_only: true });
        }
        let ifindex = interface_index(interface)?;
        let fd = packet_socket(0)?;
        bind(&fd, ifindex, 0)?;
        Ok(Sender { fd, ip_only: false })
    }

    /// Sends every frame of `frames`, in as few system calls as the kernel
    /// allows; waits briefly and retries while the device queue is full.
    pub fn send_all(&self, frames: &[[u8; FRAME_LEN]]) -> Result<(), SynError> {
        let skip = if self.ip_only { 14 } else { 0 };
        let mut iov: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f[skip..].as_ptr() as *mut libc::c_void,
                iov_len: FRAME_LEN - skip,
            })
            .collect();
        // The raw IP socket wants a destination per message (the header's).
        let mut names: Vec<libc::sockaddr_in> = if self.ip_only {
            frames
                .iter()
                .map(|f| libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes([f[30], f[31], f[32], f[33]]),
                    },
                    sin_zero: [0; 8],
                })
                .collect()
        } else {
            Vec::new()
        };
        // SAFETY: mmsghdr is plain data; all-zero is valid (no name, no control).
        let mut msgs: Vec<libc::mmsghdr> = (0..frames.len())
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        for (i, (m, v)) in msgs.iter_mut().zip(iov.iter_mut()).enumerate() {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            if let Some(name) = names.get_mut(i) {
                m.msg_hdr.msg_name = name as *mut libc::sockaddr_in as *mut libc::c_void;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
        }
        let mut done = 0;
        let mut stalls = 0u32;
        while done < msgs.len() {
            // SAFETY: msgs[done..] are valid headers whose iovecs and names
            // point into `frames` and `names`, which outlive the call.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as u32,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
                        if stalls < 100_000 =>
                    {
                        stalls += 1;
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    _ => {
                        return Err(SynError::Io(io::Error::new(
                            e.kind(),
                            format!("sendmmsg: {e}"),
                        )))
                    }
                }
            }
            done += r as usize;
        }
        Ok(())
    }
}

/// Receives candidate replies on one interface.
pub struct Receiver {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Receiver {
    /// A packet socket on `interface` that only sees TCP frames to `our_ip`
    /// with a destination port in the probes' range.
    pub fn open(interface: &str, our_ip: std::net::Ipv4Addr) -> Result<Receiver, SynError> {
        let ifindex = interface_index(interface)?;
        let fd = packet_socket(ETH_P_IP)?;
        let filter = reply_filter(u32::from(our_ip));
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        set_opt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "attach BPF filter",
        )
        .map_err(SynError::Io)?;
        bind(&fd, ifindex, ETH_P_IP)?;
        // A big queue rides out bursts of replies; FORCE works as root and
        // the plain option is the fallback under CAP_NET_RAW alone.
        let size: i32 = 8 << 20;
        if set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size, "rcvbuf").is_err() {
            let _ = set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size, "rcvbuf");
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        set_opt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "receive timeout",
        )
        .map_err(SynError::Io)?;
        Ok(Receiver {
            fd,
            buf: vec![0u8; 2048],
        })
    }

    /// Hands every frame already queued to `each`, without waiting, and
    /// returns how many there were. The caller polls this on a timer: one
    /// wake-up per millisecond instead of one per reply keeps the receive
    /// path's cost off the probes' CPU budget.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) -> Result<usize, SynError> {
        let mut count = 0;
        loop {
            // SAFETY: sockaddr_ll is plain data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(count),
                    _ => Err(SynError::Io(io::Error::new(
                        e.kind(),
                        format!("recvfrom: {e}"),
                    ))),
                };
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            count += 1;
            each(&self.buf[..n as usize]);
        }
    }
}

impl Receiver {
    /// Blocks until a frame is queued or `timeout` passes (no busy polling
    /// while nothing comes in, as in the cool-down).
    pub fn wait(&self, timeout: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the result only decides whether to read.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    }
}

/// Classic BPF: IPv4, TCP, not a fragment, destination `our_ip`,
/// destination port >= SPORT_BASE. Offsets count from the Ethernet header.
fn reply_filter(our_ip: u32) -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = 0x28;
    const LD_W_ABS: u16 = 0x20;
    const LD_B_ABS: u16 = 0x30;
    const LDX_B_MSH: u16 = 0xb1;
    const LD_H_IND: u16 = 0x48;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    vec![
        op(LD_H_ABS, 0, 0, 12),             // 0: ethertype
        op(JEQ_K, 0, 9, 0x0800),            // 1: IPv4, else drop (11)
        op(LD_W_ABS, 0, 0, 30),             // 2: destination address
        op(JEQ_K, 0, 7, our_ip),            // 3
        op(LD_B_ABS, 0, 0, 23),             // 4: protocol
        op(JEQ_K, 0, 5, 6),                 // 5: TCP
        op(LD_H_ABS, 0, 0, 20),             // 6: flags and fragment offset
        op(JSET_K, 3, 0, 0x1fff),           // 7: a fragment: drop
        op(LDX_B_MSH, 0, 0, 14),            // 8: X = IP header length
        op(LD_H_IND, 0, 0, 16),             // 9: TCP destination port
        op(JGE_K, 1, 0, SPORT_BASE as u32), // 10: ours: accept (12)
        op(RET_K, 0, 0, 0),                 // 11: drop
        op(RET_K, 0, 0, 0x0004_0000),       // 12: accept the whole frame
    ]
}
