"""Named relaxations for real-world NACHA files (the counterpart of moov-io/ach's ValidateOpts).

Every option is off by default: a file must meet the NACHA Operating Rules unless the caller
names the rule it accepts to break. Each name says exactly what it relaxes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from qenex.payments.common import PaymentFormatError

OPTION_DOCS: dict[str, str] = {
    "skip_all": "read the record structure only; no field, total or rule check at all",
    "allow_missing_file_header": "accept a file without its type 1 file header record",
    "allow_missing_file_control": "accept a file without its type 9 file control record",
    "allow_missing_batch_control": "accept batches that end without a type 8 batch control record",
    "allow_partial_file": "all three above: a bare run of batches/entries (a file fragment)",
    "require_aba_origin": "stricter: the immediate origin must be a blank and a valid 9-digit routing number",
    "bypass_origin_validation": "do not check the immediate origin (file header 14-23)",
    "bypass_destination_validation": "do not check the immediate destination (file header 4-13) routing number",
    "allow_invalid_check_digit": "accept an RDFI routing number whose check digit (3-7-1 weights) is wrong",
    "custom_return_codes": "accept return reason codes outside the NACHA R-code table (private codes)",
    "allow_special_characters": "accept characters outside printable ASCII (e.g. extended Latin-1) in text fields",
    "allow_empty_individual_name": "accept a blank individual/receiver name where the rules require one",
    "allow_unordered_batch_numbers": "accept batch numbers that are not ascending",
    "allow_unordered_trace_numbers": "accept entry trace numbers that are not ascending within a batch",
    "allow_zero_batches": "accept a file with no batch at all",
    "unequal_service_class_code": "accept a batch control service class code different from its header's",
    "allow_invalid_amounts": "accept amounts that break SEC ceilings and zero-amount rules",
}

# moov-io/ach ValidateOpts names (Go) mapped to ours, so manifests and users of that library
# can name the relaxation they know.
MOOV_OPTION_NAMES: dict[str, str] = {
    "SkipAll": "skip_all",
    "AllowMissingFileHeader": "allow_missing_file_header",
    "AllowMissingFileControl": "allow_missing_file_control",
    "BypassOriginValidation": "bypass_origin_validation",
    "RequireABAOrigin": "require_aba_origin",
    "BypassDestinationValidation": "bypass_destination_validation",
    "AllowInvalidCheckDigit": "allow_invalid_check_digit",
    "CustomReturnCodes": "custom_return_codes",
    "AllowSpecialCharacters": "allow_special_characters",
    "AllowEmptyIndividualName": "allow_empty_individual_name",
    "AllowUnorderedBatchNumbers": "allow_unordered_batch_numbers",
    "AllowZeroBatches": "allow_zero_batches",
    "UnequalServiceClassCode": "unequal_service_class_code",
    "AllowInvalidAmounts": "allow_invalid_amounts",
}


@dataclass(frozen=True, slots=True)
class AchOptions:
    skip_all: bool = False
    allow_missing_file_header: bool = False
    allow_missing_file_control: bool = False
    allow_missing_batch_control: bool = False
    allow_partial_file: bool = False
    require_aba_origin: bool = False
    bypass_origin_validation: bool = False
    bypass_destination_validation: bool = False
    allow_invalid_check_digit: bool = False
    custom_return_codes: bool = False
    allow_special_characters: bool = False
    allow_empty_individual_name: bool = False
    allow_unordered_batch_numbers: bool = False
    allow_unordered_trace_numbers: bool = False
    allow_zero_batches: bool = False
    unequal_service_class_code: bool = False
    allow_invalid_amounts: bool = False

    @property
    def missing_header_ok(self) -> bool:
        return self.allow_missing_file_header or self.allow_partial_file

    @property
    def missing_file_control_ok(self) -> bool:
        return self.allow_missing_file_control or self.allow_partial_file

    @property
    def missing_batch_control_ok(self) -> bool:
        return self.allow_missing_batch_control or self.allow_partial_file

    def enabled(self) -> frozenset[str]:
        return frozenset(f.name for f in fields(self) if getattr(self, f.name))


def make_options(raw: dict[str, Any]) -> AchOptions:
    """Options from keyword arguments; accepts our names and moov-io/ach's Go names."""
    values: dict[str, bool] = {}
    for key, value in raw.items():
        name = MOOV_OPTION_NAMES.get(key, key)
        if name not in OPTION_DOCS:
            raise PaymentFormatError(f"unknown ACH option '{key[:40]}'", code="ach_unknown_option")
        if not isinstance(value, bool):
            raise PaymentFormatError(f"ACH option '{name}' must be true or false", code="ach_unknown_option")
        values[name] = value
    return AchOptions(**values)
