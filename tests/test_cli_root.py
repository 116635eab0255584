import subprocess
import sys

from qenex import __version__


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qenex", *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_and_help():
    r = run_cli("version")
    assert r.returncode == 0 and r.stdout.strip() == __version__
    r = run_cli("--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_unknown_command_is_one_line_usage_error():
    r = run_cli("no-such-command")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
