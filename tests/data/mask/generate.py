#!/usr/bin/env python3
"""Generates the independent labelled masking corpus in this directory (run once; the output is
committed so CI needs no Python).

    pip install faker==40.63.0 phonenumbers==9.0.43 python-stdnum==2.2
    python3 tests/data/mask/generate.py

Sources (none of them written from countersign's detector rules):
- Faker (MIT): names, street addresses, phone numbers, card numbers of every brand, IBANs and
  e-mails in en_US, en_GB, de_DE, fr_FR, es_ES, it_IT, nl_NL, ja_JP.
- phonenumbers (Apache-2.0, Google's libphonenumber metadata): the example numbers of every
  region (fixed line and mobile) in national and international format. Faker phone numbers
  that libphonenumber itself does not accept as valid for their locale are not labelled as
  phones (they are counted in `labelled.json` under `skipped`).
- python-stdnum (LGPL, data only): IBAN validation of Faker's IBANs.
- Prose without personal data: the docstrings of Python's standard library modules (PSF
  licence) shipped with the interpreter that runs this script, lines mentioning authors or
  e-mail addresses dropped. Used only to report the false-positive rate.

Output:
- labelled.jsonl: one record per line: {"locale", "text", "labels": [[type, start, end]],
  "decoys": [[name, start, end]]} with UTF-8 byte offsets into text.
- prose.txt: English prose, one paragraph per line.
"""

import inspect
import json
import pkgutil
import random
import re
import importlib
import sys
import os

import phonenumbers
from faker import Faker
from stdnum import iban as stdnum_iban

HERE = os.path.dirname(os.path.abspath(__file__))
LOCALES = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES",
    "it_IT": "IT", "nl_NL": "NL", "ja_JP": "JP",
}
CARD_TYPES = ["maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover",
              "diners", "jcb15", "jcb16"]
rng = random.Random(18)


class Record:
    def __init__(self, locale):
        self.locale = locale
        self.parts = []
        self.size = 0
        self.labels = []
        self.decoys = []

    def text(self, s):
        self.parts.append(s)
        self.size += len(s.encode())

    def label(self, kind, s):
        start = self.size
        self.text(s)
        self.labels.append([kind, start, self.size])

    def decoy(self, name, s):
        start = self.size
        self.text(s)
        self.decoys.append([name, start, self.size])

    def json_value(self, key, kind, value, first=False):
        """`"key": "value"` inside a JSON object, labelling the value (JSON-escaped)."""
        self.text(("" if first else ", ") + json.dumps(key) + ": \"")
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        if kind:
            self.label(kind, escaped)
        else:
            self.text(escaped)
        self.text("\"")

    def out(self):
        return {"locale": self.locale, "text": "".join(self.parts), "labels": self.labels,
                "decoys": self.decoys}


def luhn_ok(digits):
    total = 0
    for i, d in enumerate(reversed([int(c) for c in digits])):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def group4(n):
    return " ".join(n[i:i + 4] for i in range(0, len(n), 4))


skipped = {"phone": 0}


def valid_phone(number, region):
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


NAME_KEYS = ["name", "customer_name", "approver_name", "full_name", "contact", "firstName",
             "last_name", "requestedBy"]
NAME_TEMPLATES = ["requested by {}", "Dear {},", "approved by {} on Monday", "cc {}",
                  "Thanks, {}", "{} asked for read access to the orders table",
                  "escalated to {} after review", "Hello {}, the export is ready"]
DECOYS = [
    lambda f: ("version", "v%d.%d.%d" % (rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 99))),
    lambda f: ("uuid", f.uuid4()),
    lambda f: ("iso_timestamp", f.iso8601()),
    lambda f: ("date", f.date()),
    lambda f: ("unix_time", str(rng.randint(1_500_000_000, 1_900_000_000))),
    lambda f: ("order_id", "ORD-%d-%04d" % (rng.randint(100, 999), rng.randint(0, 9999))),
    lambda f: ("sha1", f.sha1()),
    lambda f: ("price", "%d.%02d EUR" % (rng.randint(1, 9999), rng.randint(0, 99))),
    lambda f: ("count", "%d items" % rng.randint(1, 100000)),
    lambda f: ("ipv4_port", "port %d" % rng.randint(1024, 65535)),
    lambda f: ("bad_luhn_card", bad_card(f)),
    lambda f: ("job", f.job()),
    lambda f: ("catch_phrase", f.catch_phrase()),
    lambda f: ("product", rng.choice(["Google Cloud Storage", "Apple Pay", "Microsoft Teams",
                                      "Amazon Web Services", "Kubernetes Operator",
                                      "Red Hat Enterprise Linux", "Visual Studio Code"])),
    lambda f: ("month_day", "%s %d" % (rng.choice(["March", "May", "June", "April", "August"]), rng.randint(1, 28))),
]


def bad_card(f):
    while True:
        n = f.credit_card_number(rng.choice(CARD_TYPES))
        n = n[:-1] + str((int(n[-1]) + rng.randint(1, 9)) % 10)
        if not luhn_ok(n):
            return n


def main():
    records = []
    for loc, region in LOCALES.items():
        f = Faker(loc)
        f.seed_instance(18)
        for i in range(60):
            # A JSON export line: name, address, phone, card, email, with decoys around.
            r = Record(loc)
            r.text("{")
            r.json_value("id", None, f.uuid4(), first=True)
            r.json_value(rng.choice(NAME_KEYS), "name", f.name().strip())
            r.json_value(rng.choice(["address", "street", "billing_address", "address_line1"]),
                         "address", f.street_address().strip())
            phone = f.phone_number()
            if valid_phone(phone, region):
                r.json_value("phone", "phone", phone)
            else:
                skipped["phone"] += 1
            card = f.credit_card_number(CARD_TYPES[i % len(CARD_TYPES)])
            r.json_value("payment", "card", group4(card) if i % 3 == 0 else card)
            r.json_value("email", "email", f.email())
            r.text(", \"note\": \"")
            name, s = rng.choice(DECOYS)(f)
            r.decoy(name, json.dumps(s, ensure_ascii=False)[1:-1])
            r.text("\"}")
            records.append(r)

            # Free text: a name in context, an address, a phone, a card, an IBAN.
            r = Record(loc)
            r.text(rng.choice(NAME_TEMPLATES).split("{}")[0])
            t = rng.choice(NAME_TEMPLATES)
            before, after = t.split("{}")
            r.parts, r.size = [], 0
            r.text(before)
            r.label("name", f.name().strip())
            r.text(after + ". Ship to ")
            r.label("address", f.street_address().strip())
            r.text(" or call ")
            phone = f.phone_number()
            if valid_phone(phone, region):
                r.label("phone", phone)
            else:
                skipped["phone"] += 1
                r.text("the desk")
            r.text(". Card ")
            card = f.credit_card_number(CARD_TYPES[(i + 3) % len(CARD_TYPES)])
            r.label("card", card if i % 2 else group4(card))
            iban = f.iban()
            if stdnum_iban.is_valid(iban):
                r.text(", account ")
                r.label("iban", iban)
            r.text(" (ref ")
            name, s = rng.choice(DECOYS)(f)
            r.decoy(name, s)
            r.text(", ")
            name, s = rng.choice(DECOYS)(f)
            r.decoy(name, s)
            r.text(").")
            records.append(r)
            if loc == "en_US":
                r = Record(loc)
                r.text("SSN on file: ")
                r.label("ssn", f.ssn())
                records.append(r)

    # libphonenumber's example numbers for every region, national and international.
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is None:
                continue
            intl = phonenumbers.format_number(ex, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            r = Record("libphonenumber:" + region)
            r.text("call ")
            r.label("phone", intl)
            r.text(" today")
            records.append(r)
            if region in LOCALES.values():
                nat = phonenumbers.format_number(ex, phonenumbers.PhoneNumberFormat.NATIONAL)
                r = Record("libphonenumber:" + region)
                r.text("tel. ")
                r.label("phone", nat)
                r.text(" (office)")
                records.append(r)

    # Values split by a line break inside one JSON string.
    f = Faker("en_US")
    f.seed_instance(7)
    for i in range(40):
        card = f.credit_card_number(CARD_TYPES[i % len(CARD_TYPES)])
        g = group4(card).split(" ")
        half = len(g) // 2
        r = Record("split")
        r.text("{\"card\": \"")
        r.label("card", " ".join(g[:half]) + "\\n" + " ".join(g[half:]))
        r.text("\"}")
        records.append(r)

    with open(os.path.join(HERE, "labelled.jsonl"), "w", encoding="utf-8") as out:
        for r in records:
            out.write(json.dumps(r.out(), ensure_ascii=False) + "\n")
    with open(os.path.join(HERE, "labelled.skipped.json"), "w") as out:
        json.dump(skipped, out)

    # Prose: stdlib docstrings.
    paragraphs = []
    names = ["string", "textwrap", "json", "csv", "collections", "itertools", "functools",
             "pathlib", "argparse", "logging", "datetime", "calendar", "decimal", "fractions",
             "random", "statistics", "heapq", "bisect", "shutil", "tempfile", "zipfile", "tarfile",
             "subprocess", "threading", "queue", "sched", "socket", "http.client", "urllib.parse",
             "email.message", "html.parser", "xml.dom.minidom", "unittest", "doctest", "pdb",
             "typing", "dataclasses", "enum", "contextlib", "abc", "io", "os", "sys", "re",
             "difflib", "pprint", "configparser", "sqlite3", "hashlib", "hmac", "secrets",
             "base64", "binascii", "struct", "codecs", "locale", "gettext", "asyncio", "selectors",
             "signal", "mmap", "ftplib", "smtplib", "imaplib", "poplib", "uuid", "ipaddress",
             "wave", "colorsys", "turtle", "tkinter", "idlelib", "pydoc", "timeit", "trace",
             "tracemalloc", "gc", "inspect", "ast", "dis", "tokenize", "zipimport", "importlib",
             "venv", "ensurepip", "platform", "errno", "ctypes", "array", "weakref", "copy",
             "shelve", "pickle", "marshal", "dbm", "gzip", "bz2", "lzma", "zlib", "glob",
             "fnmatch", "filecmp", "stat", "mailbox", "mimetypes", "webbrowser", "wsgiref",
             "xmlrpc.client", "optparse", "getopt", "cmd", "shlex", "graphlib", "numbers", "math",
             "cmath", "operator", "types", "reprlib", "string.templatelib"]
    for mod_name in names:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:
            continue
        docs = [inspect.getdoc(mod)]
        for _, obj in sorted(vars(mod).items()):
            if inspect.isfunction(obj) or inspect.isclass(obj):
                docs.append(inspect.getdoc(obj))
        for d in docs:
            if not d:
                continue
            for para in re.split(r"\n\s*\n", d):
                para = " ".join(para.split())
                if len(para) < 60 or "@" in para or re.search(r"(?i)author|copyright|written by|contributed|thanks to|maintainer", para):
                    continue
                paragraphs.append(para)
    seen = set()
    with open(os.path.join(HERE, "prose.txt"), "w", encoding="utf-8") as out:
        for p in paragraphs:
            if p not in seen:
                seen.add(p)
                out.write(p + "\n")
    print(len(records), "records;", len(seen), "prose paragraphs;", skipped, file=sys.stderr)


if __name__ == "__main__":
    main()
