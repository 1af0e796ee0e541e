"""The seccomp filter every sandboxed child runs under: a classic BPF program, built here.

    program(machine=platform.machine()) -> bytes | None    # None: no filter for this arch
    DENIED: tuple of syscall names refused with EPERM
    evaluate(prog, nr, arch, args=()) -> int               # a tiny interpreter, for tests

bubblewrap's ``--seccomp FD`` reads a compiled ``struct sock_filter[]`` and installs it
(after ``PR_SET_NO_NEW_PRIVS``) just before it execs the child. Why written here rather
than with libseccomp's bindings: the program is 60-odd fixed instructions (check the
architecture, refuse a short deny list, allow the rest); a pure module has no native
dependency to find on a Raspberry Pi or in Termux, is unit-tested by running the
program through :func:`evaluate`, and the kernel checks it again when it loads it.

Rules, in order:

1. ``arch`` must be the one this program is built for, else KILL_PROCESS (a 32-bit
   entry into a 64-bit kernel would use other numbers); on x86_64 the x32 ABI
   (``nr >= 0x40000000``) is killed too.
2. ``clone3`` answers ENOSYS (its flags live in memory BPF cannot read; libc then
   falls back to ``clone``), ``clone`` with any ``CLONE_NEW*`` flag answers EPERM.
3. Every call in :data:`DENIED` answers EPERM: process tracing and cross-process
   memory, mounts and new mount API, namespaces, keyrings, kernel modules, kexec,
   bpf, perf events, userfaultfd, swap, reboot, accounting, the kernel log,
   ``open_by_handle_at`` (the classic container escape), raw port I/O.
4. Anything else is allowed.
"""

from __future__ import annotations

import os
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

# offsets in struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];} (little endian)
OFF_NR, OFF_ARCH, OFF_ARG0_LO = 0, 4, 16

CLONE_NEW_MASK = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount2", "pivot_root", "mount_setattr",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "unshare", "setns",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "userfaultfd",
    "swapon", "swapoff", "reboot", "acct", "syslog", "open_by_handle_at",
    "iopl", "ioperm",
)  # fmt: skip

# Syscall numbers from the kernel headers (x86_64: asm/unistd_64.h; aarch64: asm-generic).
_X86_64 = {
    "clone": 56, "clone3": 435,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "mount": 165, "umount2": 166, "pivot_root": 155, "mount_setattr": 442,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "unshare": 272, "setns": 308,
    "keyctl": 250, "add_key": 248, "request_key": 249,
    "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "syslog": 103, "open_by_handle_at": 304,
    "iopl": 172, "ioperm": 173,
}  # fmt: skip
_AARCH64 = {
    "clone": 220,
    "clone3": 435,
    "ptrace": 117,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "kcmp": 272,
    "mount": 40,
    "umount2": 39,
    "pivot_root": 41,
    "mount_setattr": 442,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "unshare": 97,
    "setns": 268,
    "keyctl": 219,
    "add_key": 217,
    "request_key": 218,
    "init_module": 105,
    "finit_module": 273,
    "delete_module": 106,
    "kexec_load": 104,
    "kexec_file_load": 294,
    "bpf": 280,
    "perf_event_open": 241,
    "userfaultfd": 282,
    "swapon": 224,
    "swapoff": 225,
    "reboot": 142,
    "acct": 89,
    "syslog": 116,
    "open_by_handle_at": 265,
}  # fmt: skip  (aarch64 has no iopl/ioperm)

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
TABLES = {"x86_64": _X86_64, "aarch64": _AARCH64}
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}


def _ins(code: int, jt: int, jf: int, k: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def instructions(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The filter as (code, jt, jf, k) tuples, or None for an architecture not covered."""
    machine = _MACHINE.get(machine, machine)
    table = TABLES.get(machine)
    if table is None:
        return None
    denied = [table[name] for name in DENIED if name in table]
    prog = [
        _ins(LD_W_ABS, 0, 0, OFF_ARCH),
        _ins(JEQ_K, 1, 0, AUDIT_ARCH[machine]),
        _ins(RET_K, 0, 0, RET_KILL_PROCESS),
        _ins(LD_W_ABS, 0, 0, OFF_NR),
    ]
    if machine == "x86_64":
        prog += [_ins(JGE_K, 0, 1, 0x40000000), _ins(RET_K, 0, 0, RET_KILL_PROCESS)]
    prog += [
        _ins(JEQ_K, 0, 1, table["clone3"]),
        _ins(RET_K, 0, 0, RET_ERRNO | ENOSYS),
        _ins(JEQ_K, 0, 4, table["clone"]),
        _ins(LD_W_ABS, 0, 0, OFF_ARG0_LO),
        _ins(JSET_K, 0, 1, CLONE_NEW_MASK),
        _ins(RET_K, 0, 0, RET_ERRNO | EPERM),
        _ins(RET_K, 0, 0, RET_ALLOW),
    ]
    # One compare per denied call: equal -> jump to the shared EPERM at the end.
    n = len(denied)
    for i, nr in enumerate(denied):
        prog.append(_ins(JEQ_K, n - i, 0, nr))
    prog += [_ins(RET_K, 0, 0, RET_ALLOW), _ins(RET_K, 0, 0, RET_ERRNO | EPERM)]
    return prog


def program(machine: str | None = None) -> bytes | None:
    """The compiled ``struct sock_filter[]`` for ``machine`` (default: this one)."""
    prog = instructions(machine or platform.machine())
    if prog is None:
        return None
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def filter_fd() -> int | None:
    """A memfd holding this machine's filter, read from its start (bubblewrap's
    ``--seccomp FD``; each run or gate its own, the read moves the offset), or None."""
    prog = program()
    if prog is None:
        return None
    fd = os.memfd_create("meshagents-seccomp", 0)
    os.write(fd, prog)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def evaluate(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run ``prog`` on one seccomp_data (the subset of classic BPF this module emits)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    code = [struct.unpack_from("<HBBI", prog, off) for off in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == RET_K:
            return int(k)
        elif op in (JEQ_K, JGE_K, JSET_K):
            hit = acc == k if op == JEQ_K else acc >= k if op == JGE_K else bool(acc & k)
            pc += jt if hit else jf
        else:
            raise ValueError(f"opcode {op:#x} at {pc} not supported")
        pc += 1
