//! A machine booted under qemu for the tests that need a real one (tests/vm.rs,
//! tests/isar_build.rs): the disk's own kernel and initrd, KVM where it can run a stock kernel
//! and TCG otherwise, the serial console in a file. A boot ends when the machine powers off; one
//! that does not within its timeout is killed and fails the test with the console's last lines.
//! What the machine wrote during a boot is read back as a `Report`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest one boot may take, power-off included, before qemu is killed and the test fails.
/// Under TCG on 2 busy cores a boot took 50-125 s; a hung boot must not eat CI's time.
const BOOT_TIMEOUT_KVM: Duration = Duration::from_secs(300);
const BOOT_TIMEOUT_TCG: Duration = Duration::from_secs(600);
const MEMORY_MIB: u32 = 2048;
const CPUS: u32 = 2;

/// What qemu boots: the kernel and initrd, their command line (the console and panic settings
/// are added), and the disks, each a `-drive` value, in the order the guest sees them.
pub struct Machine {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub drives: Vec<String>,
    /// A user-mode NIC: for images whose engine waits for the network to be online.
    pub nic: bool,
}

/// How one boot went: its time to power-off and the accelerator it ran with.
pub struct Booted {
    pub seconds: f64,
    pub accel: &'static str,
}

impl Machine {
    /// Boots the machine and waits for it to power off; `serial` receives its console.
    ///
    /// Under TCG a guest kernel on two vCPUs now and then dies at its start, before it runs
    /// anything of the disk ("Oops: int3" in the middle of patching its own code, once in some
    /// forty boots here): such a boot is booted once more, its console kept beside the new one.
    /// A kernel that dies after it ran the initramfs is the test's business, never retried.
    pub fn boot(&self, serial: &Path) -> Booted {
        let booted = self.boot_once(serial);
        if booted.accel != "tcg" || !died_before_init(serial) {
            return booted;
        }
        let first = serial.with_extension("died-before-init.log");
        fs::rename(serial, &first).expect("keep the console of the boot that died");
        eprintln!(
            "vm: the kernel died before it ran init (TCG), booting again; its console: {}",
            first.display()
        );
        self.boot_once(serial)
    }

    fn boot_once(&self, serial: &Path) -> Booted {
        let (accel, cpu, timeout) = match hardware_kvm() {
            true => ("kvm", "host", BOOT_TIMEOUT_KVM),
            false => ("tcg", "max", BOOT_TIMEOUT_TCG),
        };
        let started = Instant::now();
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", &format!("q35,accel={accel}"), "-cpu", cpu])
            .args(["-m", &MEMORY_MIB.to_string(), "-smp", &CPUS.to_string()])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            // panic=-1: a kernel panic reboots at once, and -no-reboot turns that into an exit.
            .args([
                "-append",
                &format!("{} console=ttyS0 panic=-1", self.append),
            ]);
        for drive in &self.drives {
            cmd.args(["-drive", drive]);
        }
        if self.nic {
            cmd.args(["-nic", "user,model=virtio-net-pci"]);
        }
        // No graphics card: drawing the kernel's console on a framebuffer is slow under TCG.
        let mut qemu = cmd
            .args(["-nodefaults", "-vga", "none", "-display", "none"])
            .arg("-no-reboot")
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-x86_64");
        let status = loop {
            if let Some(status) = qemu.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = qemu.kill();
                let _ = qemu.wait();
                panic!(
                    "the machine did not power off within {timeout:?}; serial console:\n{}",
                    tail(serial)
                );
            }
            thread::sleep(Duration::from_millis(200));
        };
        let seconds = started.elapsed().as_secs_f64();
        let out = qemu.wait_with_output().unwrap();
        assert!(
            status.success(),
            "qemu: {status}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Booted { seconds, accel }
    }
}

/// Whether the console shows a kernel panic before the kernel ran the initramfs's /init (its
/// "Run /init as init process" line), so before the boot touched the disk.
fn died_before_init(serial: &Path) -> bool {
    let text = String::from_utf8_lossy(&fs::read(serial).unwrap_or_default()).into_owned();
    text.contains("Kernel panic") && !text.contains("Run /init as init process")
}

/// Whether qemu can run a stock kernel under KVM: /dev/kvm opens and is backed by the CPU's
/// virtualization (kvm_intel, kvm_amd). A /dev/kvm of kvm_pvm (a paging-based KVM some cloud
/// sandboxes offer) runs only kernels built as PVM guests: a Debian kernel's decompressor dies
/// there at once ("KVM internal error ... emulation failure"). $CONTAINER_LOADER_VM_ACCEL=kvm
/// or tcg decides instead.
fn hardware_kvm() -> bool {
    match std::env::var("CONTAINER_LOADER_VM_ACCEL").as_deref() {
        Ok("kvm") => return true,
        Ok("tcg") => return false,
        _ => {}
    }
    let opens = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    opens
        && ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| Path::new("/sys/module").join(m).exists())
}

/// The last lines of a serial log.
pub fn tail(path: &Path) -> String {
    let text = String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// What one boot left for the test: the files the machine wrote, read back out of its disk
/// into `dir`. Each test adds the readings of its own files.
#[derive(Clone)]
pub struct Report {
    pub boot: usize,
    pub dir: PathBuf,
    pub seconds: f64,
}

/// The log of the commands the machine ran for the test, where it kept one (the Isar probe's).
const RUN_LOG: &str = "run.log";

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "boot {} ({:.1} s), report in {}",
            self.boot,
            self.seconds,
            self.dir.display()
        )?;
        match fs::read_to_string(self.dir.join(RUN_LOG)) {
            Ok(log) => write!(f, ":\n{log}"),
            Err(_) => Ok(()),
        }
    }
}

impl Report {
    pub fn text(&self, name: &str) -> String {
        let path = self.dir.join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; {self:?}", path.display()))
    }

    /// The file's lines, trimmed, blank ones left out.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.text(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether the file has `line` as one of its lines.
    pub fn has_line(&self, name: &str, line: &str) -> bool {
        self.lines(name).iter().any(|l| l == line)
    }
}
