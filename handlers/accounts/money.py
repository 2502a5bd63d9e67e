"""Currencies and amounts: integer minor units inside, decimal strings at the edge, no float."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
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


# Plain ASCII decimal text, the fast path of parse_amount; anything else takes the Decimal path.
_PLAIN: Final = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_PLAIN_MAX_LENGTH: Final = 40

_CURRENCIES: Final = {code: Currency(code, exp) for code, exp in _EXPONENTS.items()}


def currency(code: str) -> Currency:
    found = _CURRENCIES.get(code)
    if found is None:
        raise UnknownCurrencyError(code)
    return found


def parse_amount(text: str, code: str, field: str = "amount") -> int:
    """``"500.00"`` in EUR is 50000 minor units. Rejects zero, negatives, more decimals than the
    currency has, exponents and anything over ``MAX_MINOR_UNITS``."""
    exponent = currency(code).exponent
    plain = _PLAIN.fullmatch(text) if len(text) <= _PLAIN_MAX_LENGTH else None
    if plain is not None:
        # The usual "12.50": the same answers as the Decimal path below, without a Decimal.
        whole, fraction = plain.group(1), plain.group(2) or ""
        if len(fraction) > exponent:
            raise InvalidAmountError(field, f"{code} allows at most {exponent} decimal places")
        minor = int(whole + fraction.ljust(exponent, "0"))
        check_amount(minor, field)
        return minor
    if not text or text.strip() != text or any(c in text for c in "eE_+"):
        raise InvalidAmountError(field, f"{text!r} is not a decimal amount")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidAmountError(field, f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise InvalidAmountError(field, f"{text!r} is not a decimal amount")
    decimals = -value.as_tuple().exponent  # type: ignore[operator]
    if decimals > exponent:
        raise InvalidAmountError(field, f"{code} allows at most {exponent} decimal places")
    minor = int(value.scaleb(exponent))
    check_amount(minor, field)
    return minor


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
