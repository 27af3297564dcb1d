//! Device personas and their per-deployment variation.
//!
//! A [`Persona`] is what a bot sees of one device family: prompts, the
//! BusyBox build, `uname`, `/proc` files, processes, directories. A
//! [`Deployment`] is one persona made concrete with a seed: host name,
//! process IDs, uptime and the bytes of `/bin/echo` after its ELF header
//! differ from one deployment to the next, so no fixed artefact gives every
//! iotscope honeypot away (Cowrie's default `svr04` host name and `phil`
//! user are in circulating detection lists).

use serde::Deserialize;

/// The personas that ship with iotscope (`data/personas.toml`).
pub const BUILTIN_PERSONAS: &str = include_str!("../data/personas.toml");

/// The ELF identity of the persona's binaries (`cat /bin/echo`): what a
/// Mirai loader reads to pick the build it uploads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ElfIdent {
    /// 32 or 64 (EI_CLASS).
    pub class: u8,
    /// "little" or "big" (EI_DATA).
    pub endian: String,
    /// e_machine (ELF gABI): 3 x86, 8 MIPS, 40 ARM, 62 x86-64, 183 AArch64.
    pub machine: u16,
}

/// One device family, as `personas.toml` describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Short name (`--persona` and the events' `sensor` profile).
    pub name: String,
    /// What it is, for people.
    #[serde(default)]
    pub description: String,
    /// Text before the first login prompt.
    #[serde(default)]
    pub banner: String,
    /// "login: ", "{hostname} login: "... (`{hostname}`: the deployment's).
    pub login_prompt: String,
    /// "Password: ".
    pub password_prompt: String,
    /// The shell's prompt ("# ").
    pub shell_prompt: String,
    /// Text after a successful login.
    #[serde(default)]
    pub motd: String,
    /// Host names one is picked from per deployment.
    pub hostnames: Vec<String>,
    /// `uname -m`.
    pub arch: String,
    /// The ELF identity of its binaries.
    pub elf: ElfIdent,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -v`.
    pub kernel_build: String,
    /// The BusyBox build line ("BusyBox v1.19.4 (2014-11-20 ...)").
    pub busybox: String,
    /// `/proc/cpuinfo`.
    pub cpuinfo: String,
    /// `/proc/mounts`.
    pub mounts: String,
    /// Commands shown by `ps`.
    pub processes: Vec<String>,
    /// Directories that exist.
    pub dirs: Vec<String>,
    /// Directories a bot may write to (it looks for them in /proc/mounts).
    pub writable: Vec<String>,
    /// The SSH server's identification line (RFC 4253 section 4.2); most
    /// embedded devices run Dropbear.
    #[serde(default = "default_ssh_banner")]
    pub ssh_banner: String,
    /// Router CLI words that answer nothing rather than BusyBox's "not
    /// found" (`enable`, `system`, `shell` on Huawei/ZTE-style consoles).
    #[serde(default)]
    pub quiet: Vec<String>,
}

fn default_ssh_banner() -> String {
    "SSH-2.0-dropbear_2014.63".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonaFile {
    persona: Vec<Persona>,
}

/// A persona file that does not parse or describes an impossible device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersonaError {
    /// Not TOML of the expected shape.
    #[error("{source_name}: {message}")]
    Parse {
        /// File name or "the built-in personas".
        source_name: String,
        /// What toml said (with the line).
        message: String,
    },
    /// A persona that cannot be posed as.
    #[error("{source_name}: persona {name:?}: {problem}")]
    Invalid {
        /// File name.
        source_name: String,
        /// The persona.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// Parses a persona file (the format of `data/personas.toml`).
///
/// Errors: [`PersonaError::Parse`] naming the file and line;
/// [`PersonaError::Invalid`] for a persona with no host name, an ELF class
/// other than 32/64, an endianness other than little/big, or no writable
/// directory.
pub fn parse_personas(text: &str, source_name: &str) -> Result<Vec<Persona>, PersonaError> {
    let file: PersonaFile = toml::from_str(text).map_err(|e| PersonaError::Parse {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })?;
    for p in &file.persona {
        let bad = |problem: &str| PersonaError::Invalid {
            source_name: source_name.to_string(),
            name: p.name.clone(),
            problem: problem.to_string(),
        };
        if p.name.is_empty() {
            return Err(bad("empty name"));
        }
        if p.hostnames.is_empty() {
            return Err(bad("no hostnames"));
        }
        if p.elf.class != 32 && p.elf.class != 64 {
            return Err(bad("elf.class must be 32 or 64"));
        }
        if p.elf.endian != "little" && p.elf.endian != "big" {
            return Err(bad("elf.endian must be \"little\" or \"big\""));
        }
        if p.writable.is_empty() {
            return Err(bad("no writable directory (bots look for one)"));
        }
    }
    Ok(file.persona)
}

/// The built-in personas.
pub fn builtin_personas() -> Vec<Persona> {
    parse_personas(BUILTIN_PERSONAS, "the built-in personas").expect("the built-in personas parse")
}

/// `base` with the personas of `extra` added; one of the same name replaces
/// the built-in one.
pub fn extend_personas(mut base: Vec<Persona>, extra: Vec<Persona>) -> Vec<Persona> {
    for p in extra {
        match base.iter_mut().find(|b| b.name == p.name) {
            Some(b) => *b = p,
            None => base.push(p),
        }
    }
    base
}

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): a tiny seeded generator
/// for the deployment's variations; nothing here needs to be secret.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi > lo).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A persona made concrete for one deployment.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// The device family.
    pub persona: Persona,
    /// This deployment's host name.
    pub hostname: String,
    /// Seconds the device had been up when the honeypot started.
    pub uptime_at_start: u64,
    /// `(pid, command)` of `ps`, ascending.
    pub processes: Vec<(u32, String)>,
    /// The bytes `cat /bin/echo` shows: an ELF header and program headers
    /// for the persona's CPU, then seeded bytes.
    pub echo_binary: Vec<u8>,
}

impl Deployment {
    /// The login prompt with this deployment's host name in it.
    pub fn login_prompt(&self) -> String {
        self.persona
            .login_prompt
            .replace("{hostname}", &self.hostname)
    }

    /// `persona` varied by `seed` (the same seed gives the same device).
    pub fn new(persona: Persona, seed: u64) -> Self {
        let mut rng = SplitMix::new(seed ^ 0x1075_C0DE);
        let hostname =
            persona.hostnames[rng.range(0, persona.hostnames.len() as u64) as usize].clone();
        // Embedded devices reboot with power cuts: days to a few months.
        let uptime_at_start = rng.range(2 * 86_400, 120 * 86_400);
        let mut pid = 1u32;
        let mut processes = Vec::new();
        for (i, cmd) in persona.processes.iter().enumerate() {
            processes.push((pid, cmd.clone()));
            // Kernel threads come first and close together; daemons later.
            pid += if i < 3 { 1 } else { rng.range(2, 400) as u32 };
        }
        let echo_binary = elf_image(&persona.elf, &mut rng);
        Deployment {
            persona,
            hostname,
            uptime_at_start,
            processes,
            echo_binary,
        }
    }
}

/// An ELF executable's first bytes for `ident` (ELF gABI, "ELF Header" and
/// "Program Header"): header, two PT_LOAD program headers, then 448 seeded
/// bytes standing for code. Mirai's loader reads `e_ident[EI_DATA]` and
/// `e_machine` from `cat /bin/echo` (loader/src/server.c).
fn elf_image(ident: &ElfIdent, rng: &mut SplitMix) -> Vec<u8> {
    let big = ident.endian == "big";
    let is64 = ident.class == 64;
    let mut b = Vec::with_capacity(640);
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F']);
    b.push(if is64 { 2 } else { 1 });
    b.push(if big { 2 } else { 1 });
    b.push(1); // EI_VERSION
    b.extend_from_slice(&[0; 9]); // OSABI SYSV, ABI version, padding
    let put16 = |b: &mut Vec<u8>, v: u16| {
        b.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let put32 = |b: &mut Vec<u8>, v: u32| {
        b.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let put64 = |b: &mut Vec<u8>, v: u64| {
        b.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let (ehsize, phentsize) = if is64 { (64u16, 56u16) } else { (52, 32) };
    let base: u64 = if ident.machine == 8 {
        0x0040_0000
    } else {
        0x0000_8000
    };
    let entry = base + 0x100 + rng.range(0, 0x800) * 4;
    let flags: u32 = match ident.machine {
        40 => 0x0500_0002, // ARM EABI version 5, has entry point
        8 => 0x0000_1007,  // MIPS32 o32, PIC, CPIC, noreorder
        _ => 0,
    };
    put16(&mut b, 2); // ET_EXEC
    put16(&mut b, ident.machine);
    put32(&mut b, 1);
    let filesz = 0x1_0000 + rng.range(0, 0x4_0000);
    if is64 {
        put64(&mut b, entry);
        put64(&mut b, ehsize as u64);
        put64(&mut b, filesz + 0x2000);
    } else {
        put32(&mut b, entry as u32);
        put32(&mut b, ehsize as u32);
        put32(&mut b, (filesz + 0x2000) as u32);
    }
    put32(&mut b, flags);
    put16(&mut b, ehsize);
    put16(&mut b, phentsize);
    put16(&mut b, 2); // e_phnum
    put16(&mut b, if is64 { 64 } else { 40 });
    put16(&mut b, 0); // no section headers listed
    put16(&mut b, 0);
    for (i, (flags, off)) in [(5u32, 0u64), (6, filesz)].into_iter().enumerate() {
        let vaddr = base + off + (i as u64) * 0x1_0000;
        put32(&mut b, 1); // PT_LOAD
        if is64 {
            put32(&mut b, flags);
            put64(&mut b, off);
            put64(&mut b, vaddr);
            put64(&mut b, vaddr);
            put64(&mut b, if i == 0 { filesz } else { 0x200 });
            put64(&mut b, if i == 0 { filesz } else { 0x800 });
            put64(&mut b, 0x1_0000);
        } else {
            put32(&mut b, off as u32);
            put32(&mut b, vaddr as u32);
            put32(&mut b, vaddr as u32);
            put32(&mut b, if i == 0 { filesz as u32 } else { 0x200 });
            put32(&mut b, if i == 0 { filesz as u32 } else { 0x800 });
            put32(&mut b, flags);
            put32(&mut b, 0x1_0000);
        }
    }
    for _ in 0..56 {
        b.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_personas_parse_and_vary_by_seed() {
        let ps = builtin_personas();
        assert!(ps.len() >= 3);
        let a = Deployment::new(ps[0].clone(), 1);
        let b = Deployment::new(ps[0].clone(), 1);
        assert_eq!(a.hostname, b.hostname);
        assert_eq!(a.echo_binary, b.echo_binary);
        let others: Vec<_> = (2..20).map(|s| Deployment::new(ps[0].clone(), s)).collect();
        assert!(others.iter().any(|o| o.echo_binary != a.echo_binary));
        assert!(others
            .iter()
            .any(|o| o.uptime_at_start != a.uptime_at_start));
        assert!(others.iter().any(|o| o.processes != a.processes));
    }

    /// What Mirai's loader reads of `cat /bin/echo` (EI_DATA at 5,
    /// e_machine at 18 in the file's byte order).
    #[test]
    fn echo_binary_names_the_persona_cpu() {
        for p in builtin_personas() {
            let d = Deployment::new(p.clone(), 7);
            let e = &d.echo_binary;
            assert_eq!(&e[..4], b"\x7fELF");
            let big = p.elf.endian == "big";
            assert_eq!(e[5], if big { 2 } else { 1 });
            let m = [e[18], e[19]];
            let machine = if big {
                u16::from_be_bytes(m)
            } else {
                u16::from_le_bytes(m)
            };
            assert_eq!(machine, p.elf.machine, "{}", p.name);
        }
    }

    #[test]
    fn bad_persona_files_say_what_and_where() {
        let e = parse_personas("[[persona]]\nname = 3\n", "mine.toml").unwrap_err();
        assert!(e.to_string().starts_with("mine.toml: "), "{e}");
        let mut text = BUILTIN_PERSONAS.replacen("endian = \"little\"", "endian = \"middle\"", 1);
        let e = parse_personas(&text, "x.toml").unwrap_err();
        assert!(e.to_string().contains("elf.endian"), "{e}");
        text = BUILTIN_PERSONAS.replacen("name = \"hisilicon-dvr\"", "name = \"mips-router\"", 1);
        let ps = parse_personas(&text, "x").unwrap();
        let merged = extend_personas(builtin_personas(), ps);
        assert_eq!(merged.iter().filter(|p| p.name == "mips-router").count(), 1);
    }
}
