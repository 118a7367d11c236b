"""ISO 3166-1 and ISO 4217 code lists, shipped as data so validation needs no extra package."""

from __future__ import annotations


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ISO 3166-1 alpha-2, all 249 officially assigned codes (checked against tzdata 2026.6
# iso3166.tab and Debian iso-codes 4.15), plus XK (Kosovo): user-assigned in ISO, but the code
# carriers, marketplaces and the EU use, so an order to Kosovo is not refused for its country.
COUNTRY_CODES: frozenset[str] = _codes(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    XK
    """
)

# ISO 4217 currencies in circulation that goods can be priced in, as of 2026. Deliberately left
# out: fund and accounting units (BOV CHE CHW CLF COU MXV USN UYI UYW), precious metals (XAU
# XAG XPD XPT), bond-market units (XBA-XBD), XDR XSU XUA, the test and "no currency" codes
# (XTS XXX), and codes withdrawn by 2026: HRK (euro 2023), BGN (euro 2026), ANG (-> XCG 2025),
# ZWL (-> ZWG 2024), SLL (-> SLE), CUC.
CURRENCY_CODES: frozenset[str] = _codes(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
    RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
    TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    ZWG
    """
)

# ISO 4217 minor units where they differ from the usual 2.
ZERO_DECIMAL_CURRENCIES: frozenset[str] = _codes(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
)
THREE_DECIMAL_CURRENCIES: frozenset[str] = _codes("BHD IQD JOD KWD LYD OMR TND")

# Countries whose addresses carry no postal code, or where it is not in general use, so it
# cannot be demanded (after Google's libaddressinput data; IE's Eircode is often missing).
POSTAL_CODE_NOT_USED: frozenset[str] = _codes(
    """
    AE AG AO AW BF BI BJ BO BS BW BZ CD CF CG CI CK CM DJ DM ER FJ GA GD GH GM GQ GY HK IE
    KI KM KN KP LY ML MO MR MW NR NU QA RW SB SC SL SR ST SY TD TF TG TK TL TO TT TV UG VU YE
    ZW
    """
)

# Countries where carriers need the state, province or prefecture to deliver.
REGION_REQUIRED: frozenset[str] = _codes("US CA AU BR MX IN CN JP")
