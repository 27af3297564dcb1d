//! Live capture through libpcap (the `pcap` crate): on Linux libpcap reads
//! the kernel's TPACKET_V3 ring, the engine Zeek and Suricata use, and
//! compiles the kernel BPF filter.

use iotscope_wire::LinkType;

use crate::sensor::{CaptureCounters, CapturedFrame, PacketSource, SensorError};

/// How to open an interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface name (`eth0`, `any`).
    pub interface: String,
    /// The operator's kernel filter (tcpdump's syntax), instead of the
    /// darknet's.
    pub filter: Option<String>,
    /// The darknet: without `filter`, the kernel passes only frames to it
    /// ([`crate::sensor::darknet_filter`]; the VLAN clause only where the
    /// link type has VLAN tags, as Ethernet).
    pub darknets: Vec<iotscope_telescope::Prefix>,
    /// Kernel ring buffer, bytes: what absorbs a burst while the sensor
    /// commits.
    pub buffer_bytes: i32,
    /// Bytes kept of each frame.
    pub snaplen: i32,
    /// How long a read waits for frames before the sensor looks at its
    /// clock, ms.
    pub read_timeout_ms: i32,
    /// Join this PACKET_FANOUT group (hash mode: the kernel spreads flows
    /// over the group's sockets, as Zeek and Suricata do, one per thread).
    pub fanout_group: Option<u16>,
    /// Report the interface's own drops (libpcap reads them per interface,
    /// not per socket: in a fan-out group only one member should).
    pub interface_drops: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            interface: String::new(),
            filter: None,
            darknets: Vec::new(),
            buffer_bytes: 64 << 20,
            snaplen: 65535,
            read_timeout_ms: 100,
            fanout_group: None,
            interface_drops: true,
        }
    }
}

/// An open live capture.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    name: String,
    link: LinkType,
    filter: String,
    /// The operator gave the filter: a new darknet does not change it.
    custom_filter: bool,
    /// libpcap's counters are 32-bit and wrap: the last values read and
    /// the 64-bit totals kept from them.
    last: [u32; 3],
    totals: CaptureCounters,
    /// The last read found nothing: the next one first waits for frames.
    idle: bool,
    interface_drops: bool,
    read_timeout_ms: i32,
}

impl LiveCapture {
    /// Opens `opts.interface` in promiscuous mode with nanosecond
    /// timestamps and the kernel filter `opts.filter`.
    ///
    /// Errors: [`SensorError::Capture`] when the interface does not exist,
    /// the process may not capture (then the message names `setcap`), or
    /// the filter does not compile.
    pub fn open(opts: &LiveOptions) -> Result<LiveCapture, SensorError> {
        let fail = |message: String| SensorError::Capture {
            interface: opts.interface.clone(),
            message,
        };
        let explain = |e: pcap::Error| {
            let text = e.to_string();
            if text.contains("ermission") || text.contains("not permitted") {
                fail(format!(
                    "{text}: capturing needs root or the CAP_NET_RAW capability, for example \
                     `sudo setcap cap_net_raw=eip $(command -v iotscope)`"
                ))
            } else {
                fail(text)
            }
        };
        let mut cap = pcap::Capture::from_device(opts.interface.as_str())
            .map_err(explain)?
            // `any` has no promiscuous mode: libpcap warns, and the crate
            // takes any warning for an error.
            .promisc(opts.interface != "any")
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_bytes)
            .timeout(opts.read_timeout_ms)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(explain)?
            // Non-blocking, with our own poll: with TPACKET_V3 libpcap's
            // timeout only runs once a frame has arrived, so on a silent
            // interface a blocking read never returns and the sensor could
            // not be stopped.
            .setnonblock()
            .map_err(explain)?;
        if let Some(group) = opts.fanout_group {
            let val: libc::c_int =
                group as libc::c_int | ((libc::PACKET_FANOUT_HASH as libc::c_int) << 16);
            // SAFETY: an int option on the capture's own socket.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&cap),
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    &val as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(fail(format!(
                    "joining fan-out group {group}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        let link = LinkType::from_linktype(cap.get_datalink().0 as u32);
        let filter = opts.filter.clone().unwrap_or_else(|| {
            crate::sensor::darknet_filter(&opts.darknets, link == LinkType::Ethernet)
        });
        if !filter.is_empty() {
            cap.filter(&filter, true)
                .map_err(|e| fail(format!("filter {filter:?}: {e}")))?;
        }
        Ok(LiveCapture {
            cap,
            name: opts.interface.clone(),
            link,
            filter,
            custom_filter: opts.filter.is_some(),
            last: [0; 3],
            totals: CaptureCounters::default(),
            idle: false,
            read_timeout_ms: opts.read_timeout_ms,
            interface_drops: opts.interface_drops,
        })
    }
}

impl LiveCapture {
    /// The kernel filter in force (empty: every frame).
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

impl PacketSource for LiveCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn link(&self) -> LinkType {
        self.link
    }

    fn next_frame(&mut self) -> Result<Option<CapturedFrame<'_>>, SensorError> {
        if self.idle {
            self.idle = false;
            let mut fd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; an error or EINTR (a signal) only
            // ends the wait early.
            unsafe { libc::poll(&mut fd, 1, self.read_timeout_ms) };
        }
        match self.cap.next_packet() {
            Ok(p) => {
                // With nanosecond precision tv_usec holds nanoseconds. The
                // casts are no-ops where time_t is 64-bit, not everywhere.
                let ts = p.header.ts;
                #[allow(clippy::unnecessary_cast)]
                let ts_ns = (ts.tv_sec as i64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_usec as i64);
                Ok(Some(CapturedFrame {
                    ts_ns,
                    data: p.data,
                    orig_len: p.header.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.idle = true;
                Ok(None)
            }
            Err(e) => Err(SensorError::Capture {
                interface: self.name.clone(),
                message: e.to_string(),
            }),
        }
    }

    fn set_darknets(&mut self, darknets: &[iotscope_telescope::Prefix]) -> Result<(), SensorError> {
        if self.custom_filter {
            return Ok(());
        }
        let filter = crate::sensor::darknet_filter(darknets, self.link == LinkType::Ethernet);
        self.cap
            .filter(&filter, true)
            .map_err(|e| SensorError::Capture {
                interface: self.name.clone(),
                message: format!("filter {filter:?}: {e}"),
            })?;
        self.filter = filter;
        Ok(())
    }

    fn counters(&mut self) -> Result<CaptureCounters, SensorError> {
        let s = self.cap.stats().map_err(|e| SensorError::Capture {
            interface: self.name.clone(),
            message: format!("statistics: {e}"),
        })?;
        let now = [
            s.received,
            s.dropped,
            if self.interface_drops {
                s.if_dropped
            } else {
                0
            },
        ];
        let totals = [
            &mut self.totals.received,
            &mut self.totals.dropped,
            &mut self.totals.if_dropped,
        ];
        for ((total, last), now) in totals.into_iter().zip(&mut self.last).zip(now) {
            *total += now.wrapping_sub(*last) as u64;
            *last = now;
        }
        Ok(self.totals)
    }
}
