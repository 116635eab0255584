"""Payments benchmark: parse+validate throughput of MT103, pacs.008 (with XSD) and NACHA.

    .venv/bin/python -m bench.payments_bench [--seconds 2] [--profile] [--nacha-mb 5]

Targets (issue 4): >= 20,000 MT103/s, >= 5,000 pacs.008/s with XSD validation, >= 50 MB/s
NACHA. Each figure is the best of a few timed rounds of the public `validate` entry point on
text input (so it includes parsing), in one process on one core. Two rates per format: by wall
clock (what a caller sees, lower when other processes share the cores) and by the process's
CPU time (the cost of the work itself, which load does not change much); the share of the wall
time the process was on a CPU says how loaded the machine was. `--profile` prints where the
time goes (cProfile, top functions by own time) so a format's owner can fix a miss.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

ROUNDS = 3
TARGET_MT103_PER_S = 20_000
TARGET_PACS008_PER_S = 5_000
TARGET_NACHA_MB_PER_S = 50.0
NACHA_ENTRIES_PER_BATCH = 2_000

MT103 = (
    "{1:F01CHASUS33AXXX0000000000}{2:I103DEUTDEFFXXXXN}"
    "{3:{108:QNXREF0001}{121:e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71}}{4:\r\n"
    ":20:INVOICE-2024-001\r\n:23B:CRED\r\n:32A:240115USD100000,00\r\n"
    ":50K:/123456789\r\nJOHN DOE\r\n1 MAIN STREET\r\n"
    ":59:/987654321\r\nJANE SMITH\r\n2 HIGH STREET\r\n"
    ":70:PAYMENT FOR SERVICES\r\n:71A:SHA\r\n-}"
)

PACS008 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">
<FIToFICstmrCdtTrf>
<GrpHdr><MsgId>QNX-MSG-2024-0001</MsgId><CreDtTm>2024-01-15T10:30:00</CreDtTm><NbOfTxs>1</NbOfTxs>
<SttlmInf><SttlmMtd>INDA</SttlmMtd></SttlmInf></GrpHdr>
<CdtTrfTxInf>
<PmtId><InstrId>QNX-INSTR-1</InstrId><EndToEndId>QNX-E2E-1</EndToEndId>
<UETR>e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71</UETR></PmtId>
<IntrBkSttlmAmt Ccy="EUR">1500.00</IntrBkSttlmAmt><IntrBkSttlmDt>2024-01-15</IntrBkSttlmDt>
<ChrgBr>SHAR</ChrgBr>
<InstgAgt><FinInstnId><BICFI>DEUTDEFFXXX</BICFI></FinInstnId></InstgAgt>
<InstdAgt><FinInstnId><BICFI>BNPAFRPPXXX</BICFI></FinInstnId></InstdAgt>
<Dbtr><Nm>Max Mustermann</Nm></Dbtr>
<DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct>
<DbtrAgt><FinInstnId><BICFI>DEUTDEFFXXX</BICFI></FinInstnId></DbtrAgt>
<CdtrAgt><FinInstnId><BICFI>BNPAFRPPXXX</BICFI></FinInstnId></CdtrAgt>
<Cdtr><Nm>Pierre Dupont</Nm></Cdtr>
<CdtrAcct><Id><IBAN>FR1420041010050500013M02606</IBAN></Id></CdtrAcct>
<RmtInf><Ustrd>Invoice 42</Ustrd></RmtInf>
</CdtTrfTxInf>
</FIToFICstmrCdtTrf>
</Document>
"""

# RDFI routing prefixes (8 digits) with their check digit (3-7-1 weights, mod 10).
_RDFIS = (("23138010", "4"), ("12104288", "2"), ("07640125", "1"))
_ODFI = "07640125"


def _f(text: str, width: int) -> str:
    return text[:width].ljust(width)


def _n(value: int, width: int) -> str:
    return str(value % 10**width).rjust(width, "0")


def make_nacha(batches: int, entries: int) -> str:
    """A NACHA PPD credit file with correct entry hashes, totals and blocking (Appendix One)."""
    lines = ["101 076401251 2313801042401151030A094101" + _f("CITADEL BANK", 23) + _f("QENEX TEST BANK", 23) + " " * 8]
    file_hash = file_credit = trace = 0
    for b in range(1, batches + 1):
        lines.append(
            "5220" + _f("QENEX PAYROLL", 16) + " " * 20 + "1234567890PPD" + _f("PAYROLL", 10)
            + "240115240116   1" + _ODFI + _n(b, 7)
        )
        batch_hash = batch_credit = 0
        for e in range(entries):
            rdfi, check = _RDFIS[e % len(_RDFIS)]
            amount = 1000 + e
            trace += 1
            lines.append(
                "622" + rdfi + check + _f(f"ACCT{e:06d}", 17) + _n(amount, 10) + _f(f"ID{e:06d}", 15)
                + _f(f"EMPLOYEE {e}", 22) + "  0" + _ODFI + _n(trace, 7)
            )
            batch_hash += int(rdfi)
            batch_credit += amount
        lines.append(
            "8220" + _n(entries, 6) + _n(batch_hash, 10) + "0" * 12 + _n(batch_credit, 12) + "1234567890"
            + " " * 25 + _ODFI + _n(b, 7)
        )
        file_hash += batch_hash
        file_credit += batch_credit
    blocks = -(-(len(lines) + 1) // 10)
    lines.append(
        "9" + _n(batches, 6) + _n(blocks, 6) + _n(batches * entries, 8) + _n(file_hash, 10) + "0" * 12
        + _n(file_credit, 12) + " " * 39
    )
    lines += ["9" * 94] * (blocks * 10 - len(lines))
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


class Rate:
    """Best units/s over the rounds by wall clock and by process CPU time, and the CPU share."""

    def __init__(self, wall: float, cpu: float, share: float) -> None:
        self.wall, self.cpu, self.share = wall, cpu, share

    def text(self, unit: str, digits: int = 0) -> str:
        return f"{self.wall:,.{digits}f} {unit} wall, {self.cpu:,.{digits}f} {unit} CPU (on CPU {self.share:.0%})"


def _best_rate(call: Callable[[], Any], per_call: float, seconds: float) -> Rate:
    """Best units/s over ROUNDS rounds of about seconds/ROUNDS each (after one warm-up call)."""
    call()
    wall = cpu = 0.0
    share = 0.0
    for _ in range(ROUNDS):
        done, start, cpu_start = 0, time.perf_counter(), time.process_time()
        deadline = start + seconds / ROUNDS
        while True:
            call()
            done += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        used = max(time.process_time() - cpu_start, 1e-9)
        if done * per_call / (now - start) > wall:
            wall, share = done * per_call / (now - start), used / (now - start)
        cpu = max(cpu, done * per_call / used)
    return Rate(wall, cpu, share)


def _check(report: Any, name: str) -> str:
    """The report must be a real acceptance; an invalid fixture would make the figure meaningless."""
    if not report.valid:
        raise SystemExit(f"{name}: fixture rejected: {[str(i) for i in report.errors][:3]}")
    notes = [i.code for i in report.issues if i.severity != "error"]
    return f" (warnings: {', '.join(sorted(set(notes)))})" if notes else ""


def _profile(call: Callable[[], Any], repeat: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeat):
        call()
    prof.disable()
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def _module(name: str) -> Any | None:
    try:
        module = importlib.import_module(f"qenex.payments.{name}")
    except ImportError as exc:
        print(f"  {name}: not available ({exc})")
        return None
    if not callable(getattr(module, "validate", None)):
        print(f"  {name}: not available (no validate())")
        return None
    return module


def bench_mt103(seconds: float, profile: bool) -> None:
    swift = _module("swift")
    if swift is None:
        return
    note = _check(swift.validate(MT103), "MT103")
    rate = _best_rate(lambda: swift.validate(MT103), 1, seconds)
    verdict = "meets" if rate.wall >= TARGET_MT103_PER_S else "MISSES"
    print(f"  MT103 parse+validate: {rate.text('msg/s')} ({verdict} {TARGET_MT103_PER_S:,}/s){note}")
    if profile:
        _profile(lambda: swift.validate(MT103), 5_000)


def bench_pacs008(seconds: float, profile: bool) -> None:
    iso = _module("iso20022")
    if iso is None:
        return
    note = _check(iso.validate(PACS008), "pacs.008")
    # Prove the figure includes XSD validation: an element the schema forbids must be caught.
    rogue = iso.validate(PACS008.replace(b"<ChrgBr>", b"<Rogue/><ChrgBr>"))
    if rogue.valid:
        raise SystemExit("pacs.008: XSD validation is not running; the figure would be meaningless")
    rate = _best_rate(lambda: iso.validate(PACS008), 1, seconds)
    verdict = "meets" if rate.wall >= TARGET_PACS008_PER_S else "MISSES"
    print(f"  pacs.008.001.08 parse+XSD+rules: {rate.text('msg/s')} ({verdict} {TARGET_PACS008_PER_S:,}/s){note}")
    if profile:
        _profile(lambda: iso.validate(PACS008), 2_000)


def bench_nacha(seconds: float, profile: bool, megabytes: float) -> None:
    ach = _module("ach")
    if ach is None:
        return
    batches = max(1, int(megabytes * 1_000_000 / 95 / NACHA_ENTRIES_PER_BATCH))
    text = make_nacha(batches, NACHA_ENTRIES_PER_BATCH)
    size_mb = len(text) / 1_000_000
    note = _check(ach.validate(text), "NACHA")
    rate = _best_rate(lambda: ach.validate(text), size_mb, seconds)
    verdict = "meets" if rate.wall >= TARGET_NACHA_MB_PER_S else "MISSES"
    lines = text.count("\n")
    print(
        f"  NACHA parse+validate ({size_mb:.1f} MB, {lines:,} records): {rate.text('MB/s', 1)}, "
        f"{rate.wall / size_mb * lines:,.0f} records/s ({verdict} {TARGET_NACHA_MB_PER_S:.0f} MB/s){note}"
    )
    if profile:
        _profile(lambda: ach.validate(text), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="payments_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per format")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each format")
    parser.add_argument("--nacha-mb", type=float, default=5.0, help="size of the generated NACHA file")
    args, _unknown = parser.parse_known_args(argv)  # run_all passes its own argv through
    print(f"payments benchmark on {machine()}")
    bench_mt103(args.seconds, args.profile)
    bench_pacs008(args.seconds, args.profile)
    bench_nacha(args.seconds, args.profile, args.nacha_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
