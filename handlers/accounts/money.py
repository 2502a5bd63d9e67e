"""Currencies and amounts: integer minor units inside, decimal strings at the edge, no float."""

from __future__ import annotations

import re
from typing import Final

from handlers.accounts.errors import InvalidAmountError, UnknownCurrencyError

__all__ = ["MAX_MINOR_UNITS", "Currency", "currency", "format_amount", "parse_amount"]

# A cap on any amount and any balance, in minor units: 10^15 stays inside both SQLite's 64-bit
# integers and the 2^53 that JavaScript clients read exactly, so no layer can overflow.
MAX_MINOR_UNITS: Final = 10**15

# ISO 4217 active codes by minor-unit exponent (codes without minor units, such as XAU, are left
# out: an account balance needs a defined exponent).
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UZS VED VES WST XCD XCG YER "
    "ZAR ZMW ZWG"
)
_EXPONENTS: Final[dict[str, int]] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}


class Currency:
    __slots__ = ("code", "exponent")

    def __init__(self, code: str, exponent: int) -> None:
        self.code = code
        self.exponent = exponent

    def __repr__(self) -> str:
        return f"Currency({self.code!r}, {self.exponent})"


# An amount's only form: ASCII digits with an optional fraction; a leading minus is matched so
# that a negative amount is refused for its sign. No exponent, underscore, plus sign, space or
# non-ASCII digit (``[0-9]`` is ASCII where ``\d`` would match any script's digits).
_AMOUNT: Final = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
# MAX_MINOR_UNITS has 16 digits: more significant whole digits than that is over it in any
# currency, and is refused before the digits become an int.
_MAX_WHOLE_DIGITS: Final = len(str(MAX_MINOR_UNITS))

_CURRENCIES: Final = {code: Currency(code, exp) for code, exp in _EXPONENTS.items()}


def currency(code: str) -> Currency:
    found = _CURRENCIES.get(code)
    if found is None:
        raise UnknownCurrencyError(code)
    return found


def parse_amount(text: str, code: str, field: str = "amount") -> int:
    """``"500.00"`` in EUR is 50000 minor units. The text must match ``-?[0-9]+(\\.[0-9]+)?``
    with at most the currency's decimals; zero, negatives and anything over
    ``MAX_MINOR_UNITS`` are refused. The shape is checked before any arithmetic, so no text
    can make the parse slow or overflow."""
    exponent = currency(code).exponent
    shape = _AMOUNT.fullmatch(text)
    if shape is None:
        raise InvalidAmountError(field, f'{_quoted(text)} is not a decimal amount such as "10.50"')
    if shape.group(1):
        raise InvalidAmountError(field, "must be greater than zero")
    whole, fraction = shape.group(2).lstrip("0"), shape.group(3) or ""
    if len(fraction) > exponent:
        raise InvalidAmountError(field, f"{code} allows at most {exponent} decimal places")
    if len(whole) > _MAX_WHOLE_DIGITS:
        raise InvalidAmountError(field, "is over the maximum amount")
    minor = int(whole + fraction.ljust(exponent, "0") or "0")
    check_amount(minor, field)
    return minor


def _quoted(text: str, limit: int = 40) -> str:
    """``text`` for an error message, cut short: the message echoes client input."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def check_amount(minor: int, field: str = "amount") -> None:
    if minor <= 0:
        raise InvalidAmountError(field, "must be greater than zero")
    if minor > MAX_MINOR_UNITS:
        raise InvalidAmountError(field, "is over the maximum amount")


def format_amount(minor: int, code: str) -> str:
    """50000 minor units of EUR is ``"500.00"``."""
    exponent = currency(code).exponent
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}" if exponent else f"{sign}{whole}"
