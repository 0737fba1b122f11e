#!/usr/bin/env python3
"""A small library system for the SIP2 bridge's end-to-end test.

The SIP2 side is pysip2 (PyPI: codec, checksums, framing, server); this file
only says what the library knows: one patron, LIB-0042, whose name is not
ASCII, and which items are on loan. Every patron id the library system
receives is appended to the file named by the first argument, one JSON line
per request, so the test can tell what it saw.

Usage: ils.py SEEN_FILE [ENCODING]   (prints "listening PORT" once ready)
"""

import json
import sys

import anyio
from pysip2 import (
    CHECKIN,
    CHECKOUT,
    END_PATRON_SESSION,
    LOGIN,
    PATRON_INFORMATION,
    RENEW,
    CheckinResponse,
    CheckoutResponse,
    EndSessionResponse,
    LoginResponse,
    PatronInformationResponse,
    RenewResponse,
    SIP2Server,
)

PATRONS = {"LIB-0042": "Hanako M\u00fcller"}
SEEN = open(sys.argv[1], "a", encoding="utf-8")
ENCODING = sys.argv[2] if len(sys.argv) > 2 else "cp850"
LOANS = {}

app = SIP2Server(institution_id="bunkyo", encoding=ENCODING)


def seen(cmd, patron):
    SEEN.write(json.dumps({"cmd": cmd, "patron": patron}) + "\n")
    SEEN.flush()


@app.route(LOGIN)
async def login(req, ctx):
    seen("93", None)
    ok = (req.login_user_id, req.login_password) == ("sc1", "pw")
    return LoginResponse(ok="1" if ok else "0")


@app.route(PATRON_INFORMATION)
async def patron_information(req, ctx):
    seen("63", req.patron_identifier)
    name = PATRONS.get(req.patron_identifier)
    charged = sum(1 for p in LOANS.values() if p == req.patron_identifier)
    return PatronInformationResponse(
        patron_status=" " * 14,
        language=req.language,
        transaction_date=ctx.now_18(),
        hold_items_count="0000",
        overdue_items_count="0000",
        charged_items_count=f"{charged:04d}",
        fine_items_count="0000",
        recall_items_count="0000",
        unavailable_holds_count="0000",
        institution_id=req.institution_id,
        patron_identifier=req.patron_identifier,
        personal_name=name or "",
        valid_patron="Y" if name else "N",
    )


@app.route(CHECKOUT)
async def checkout(req, ctx):
    seen("11", req.patron_identifier)
    ok = req.patron_identifier in PATRONS and req.item_identifier not in LOANS
    if ok:
        LOANS[req.item_identifier] = req.patron_identifier
    return CheckoutResponse(
        ok="1" if ok else "0",
        renewal_ok="N",
        magnetic_media="N",
        desensitize="Y" if ok else "N",
        transaction_date=ctx.now_18(),
        institution_id=req.institution_id,
        patron_identifier=req.patron_identifier,
        item_identifier=req.item_identifier,
        title_identifier="Botchan",
        due_date="20261224    235900",
    )


@app.route(RENEW)
async def renew(req, ctx):
    seen("29", req.patron_identifier)
    ok = LOANS.get(req.item_identifier or "") == req.patron_identifier
    return RenewResponse(
        ok="1" if ok else "0",
        renewal_ok="Y" if ok else "N",
        magnetic_media="N",
        desensitize="N",
        transaction_date=ctx.now_18(),
        institution_id=req.institution_id,
        patron_identifier=req.patron_identifier,
        item_identifier=req.item_identifier or "",
        title_identifier="Botchan",
        due_date="20270107    235900",
    )


@app.route(CHECKIN)
async def checkin(req, ctx):
    seen("09", None)
    ok = LOANS.pop(req.item_identifier, None) is not None
    return CheckinResponse(
        ok="1" if ok else "0",
        resensitize="Y",
        magnetic_media="N",
        alert="N",
        transaction_date=ctx.now_18(),
        institution_id=req.institution_id,
        item_identifier=req.item_identifier,
        permanent_location="main",
    )


@app.route(END_PATRON_SESSION)
async def end_session(req, ctx):
    seen("35", req.patron_identifier)
    return EndSessionResponse(
        end_session="Y",
        transaction_date=ctx.now_18(),
        institution_id=req.institution_id,
        patron_identifier=req.patron_identifier,
    )


async def main():
    async with app.start("127.0.0.1", 0) as port:
        print(f"listening {port}", flush=True)
        await anyio.sleep_forever()


anyio.run(main)
