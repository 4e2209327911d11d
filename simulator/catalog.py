"""Reference data of the simulated estate: charge master, cost centers, vendors, names.

All identities are fictional. Codes follow real shapes (CDM numbers, CPT, revenue
cost centers) so that the messages look like the ones an interface analyst reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ChargeItem:
    cdm: str  # charge description master code (FT1-7)
    description: str
    cpt: str  # FT1-25
    price: Decimal
    cost_center: str  # FT1-13: revenue cost center
    department: str


@dataclass(frozen=True, slots=True)
class Department:
    code: str  # part of the charge batch id, e.g. B20260310-OR07
    system: str  # the ancillary system that posts its charges (MSH-3)
    cost_center: str
    cost_center_name: str


DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        Department("OR07", "PERIOP", "7010", "CARDIAC CATH LAB"),
        Department("OR02", "PERIOP", "7000", "SURGERY"),
        Department("LAB", "LAB_LIS", "7500", "CLINICAL LAB"),
        Department("RAD", "RAD_RIS", "7200", "DIAGNOSTIC RADIOLOGY"),
        Department("PHA", "PHARMACY", "7600", "PHARMACY"),
        Department("NUR", "EHR_ORDERS", "6100", "MED SURG NURSING"),
    )
}

CHARGES: tuple[ChargeItem, ...] = (
    ChargeItem("3000101001", "CBC W AUTO DIFF", "85025", Decimal("48.00"), "7500", "LAB"),
    ChargeItem(
        "3000101017", "COMPREHENSIVE METABOLIC PANEL", "80053", Decimal("96.00"), "7500", "LAB"
    ),
    ChargeItem("3000101205", "TROPONIN I", "84484", Decimal("118.00"), "7500", "LAB"),
    ChargeItem("3000102230", "PROTHROMBIN TIME", "85610", Decimal("36.00"), "7500", "LAB"),
    ChargeItem("3200201010", "XR CHEST 2 VIEWS", "71046", Decimal("285.00"), "7200", "RAD"),
    ChargeItem("3200204400", "CT HEAD WO CONTRAST", "70450", Decimal("1380.00"), "7200", "RAD"),
    ChargeItem("3200207710", "US ABDOMEN COMPLETE", "76700", Decimal("760.00"), "7200", "RAD"),
    ChargeItem("2500300115", "CEFAZOLIN 1G INJ", "J0690", Decimal("42.50"), "7600", "PHA"),
    ChargeItem("2500300433", "ONDANSETRON 4MG INJ", "J2405", Decimal("28.75"), "7600", "PHA"),
    ChargeItem("2500301020", "HEPARIN 5000 UNITS INJ", "J1644", Decimal("19.40"), "7600", "PHA"),
    ChargeItem("1200100001", "ROOM AND BOARD MED SURG", "", Decimal("2450.00"), "6100", "NUR"),
    ChargeItem("1200100310", "OBSERVATION PER HOUR", "G0378", Decimal("112.00"), "6100", "NUR"),
    ChargeItem(
        "3600400120", "OR TIME LEVEL 3 FIRST 30 MIN", "", Decimal("3920.00"), "7000", "OR02"
    ),
    ChargeItem("3700400210", "ANESTHESIA FIRST 30 MIN", "", Decimal("1240.00"), "7000", "OR02"),
    ChargeItem(
        "3600402290", "KNEE ARTHROSCOPY MENISCECTOMY", "29881", Decimal("6870.00"), "7000", "OR02"
    ),
    ChargeItem("3600405510", "LAP CHOLECYSTECTOMY", "47562", Decimal("9840.00"), "7000", "OR02"),
    ChargeItem(
        "4810400330", "CARDIAC CATH LEFT HEART", "93458", Decimal("7420.00"), "7010", "OR07"
    ),
)


@dataclass(frozen=True, slots=True)
class Implant:
    item: str  # ERP item master number
    cdm: str
    description: str
    cpt: str
    price: Decimal  # patient charge
    cost: Decimal  # what the vendor invoices
    vendor: str


IMPLANTS: tuple[Implant, ...] = (
    Implant(
        "IM-100482",
        "2780001234",
        "PACEMAKER DUAL CHAMBER IMPLANT",
        "33208",
        Decimal("18450.00"),
        Decimal("6120.00"),
        "V-ABBOTT",
    ),
    Implant(
        "IM-100517",
        "2780001388",
        "DRUG ELUTING CORONARY STENT",
        "92928",
        Decimal("5980.00"),
        Decimal("1450.00"),
        "V-BOSTON",
    ),
    Implant(
        "IM-200041",
        "2780002010",
        "TOTAL KNEE FEMORAL COMPONENT",
        "27447",
        Decimal("12760.00"),
        Decimal("4380.00"),
        "V-ZIMMER",
    ),
    Implant(
        "IM-200077",
        "2780002055",
        "TIBIAL TRAY CEMENTED",
        "27447",
        Decimal("7340.00"),
        Decimal("2210.00"),
        "V-ZIMMER",
    ),
    Implant(
        "IM-300150",
        "2780003101",
        "SPINAL FUSION CAGE LUMBAR",
        "22633",
        Decimal("9820.00"),
        Decimal("3060.00"),
        "V-MEDTRONIC",
    ),
    Implant(
        "IM-300212",
        "2780003240",
        "PEDICLE SCREW 6.5MM",
        "22840",
        Decimal("1640.00"),
        Decimal("540.00"),
        "V-MEDTRONIC",
    ),
)


@dataclass(frozen=True, slots=True)
class Supply:
    item: str
    description: str
    unit_cost: Decimal
    vendor: str


SUPPLIES: tuple[Supply, ...] = (
    Supply("SP-400010", "EXAM GLOVES NITRILE M (CASE)", Decimal("94.20"), "V-MEDLINE"),
    Supply("SP-400233", "IV START KIT", Decimal("3.85"), "V-CARDINAL"),
    Supply("SP-400871", "SURGICAL MASK LEVEL 3 (BOX)", Decimal("18.60"), "V-MEDLINE"),
    Supply("SP-401120", "SALINE FLUSH 10ML (CASE)", Decimal("212.00"), "V-BD"),
    Supply("SP-402004", "SUTURE 3-0 VICRYL (BOX)", Decimal("168.00"), "V-ETHICON"),
    Supply("SP-402590", "LAPAROTOMY PACK", Decimal("46.30"), "V-CARDINAL"),
)

PAYERS: tuple[tuple[str, str], ...] = (
    ("MCR", "MEDICARE PART A"),
    ("MCD", "STATE MEDICAID"),
    ("BCBS", "BLUE PLAN OF THE PRAIRIE"),
    ("UHC", "UNITED HEALTH PLAN"),
    ("AET", "AETNA-LIKE COMMERCIAL"),
    ("TRIC", "TRICARE-LIKE MILITARY PLAN"),
)

# Fictional patient names: clearly test identities, never real people.
FIRST_NAMES = (
    "ALEX",
    "JORDAN",
    "CASEY",
    "RILEY",
    "MORGAN",
    "TAYLOR",
    "JAMIE",
    "AVERY",
    "QUINN",
    "ROWAN",
    "SAGE",
    "DREW",
    "EMERY",
    "HAYDEN",
    "PARKER",
    "REESE",
)
LAST_NAMES = (
    "TESTPATIENT",
    "SAMPLEPERSON",
    "DEMOUSER",
    "FICTIVE",
    "MOCKINGTON",
    "PLACEHOLDER",
    "EXAMPLAR",
    "SIMULANT",
    "TRIALSON",
    "PROTOTYPE",
)
STAFF = ("RN4417^KOWALSKI^DANA", "RN2291^OKAFOR^LEE", "RN3380^NGUYEN^PAT", "RN5102^BERG^SAM")
PHYSICIANS = (
    "1234567890^DOE^JORDAN^^^MD",
    "1987654321^ROE^TAYLOR^^^MD",
    "1472583690^POE^CASEY^^^MD",
)
DIAGNOSES = (
    "I50.23^Acute on chronic systolic heart failure^I10",
    "J18.9^Pneumonia unspecified organism^I10",
    "M17.11^Unilateral primary osteoarthritis right knee^I10",
    "K80.20^Calculus of gallbladder w/o obstruction^I10",
    "I25.10^Atherosclerotic heart disease^I10",
    "N39.0^Urinary tract infection^I10",
)
