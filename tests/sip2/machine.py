#!/usr/bin/env python3
"""A self-check machine for the SIP2 bridge's end-to-end test.

The SIP2 side is the Sip2 client from PyPI (which, like some real machines,
writes checksums without zero padding); this file plays a patron's visit:
log in, ask the status, then with the machine's placeholder patron id (the
card was tapped on the paired reader) ask the patron's details, borrow an
item, renew it, return it, and end the session. It prints one JSON object.

Usage: machine.py HOST PORT PLACEHOLDER ITEM [ENCODING]
"""

import json
import os
import sys
import tempfile
import time

os.chdir(tempfile.mkdtemp())  # the client writes sip2.log into the working directory

from Sip2.sip2 import Sip2  # noqa: E402

host, port, placeholder, item = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sc = Sip2()
sc.hostName = host
sc.hostPort = port
sc.tlsEnable = False
sc.socketTimeout = 10
sc.hostEncoding = sys.argv[5] if len(sys.argv) > 5 else "cp850"
sc.institutionId = "bunkyo"
sc.scLocation = "sc-1"
sc.patron = placeholder
sc.connect()


def ask(request, parse):
    return parse(sc.get_response(request))


out = {}
out["login"] = ask(sc.sip_login_request("sc1", "pw"), sc.sip_login_response)["fixed"]["Ok"]
out["status_online"] = ask(sc.sip_sc_status_request(), sc.sip_sc_status_response)["fixed"]["OnlineStatus"]
info = ask(sc.sip_patron_information_request("none"), sc.sip_patron_information_response)
out["valid_patron"] = info["variable"].get("BL", [""])[0]
out["name"] = info["variable"].get("AE", [""])[0]
out["screen"] = info["variable"].get("AF", [""])[0]
# The client leaves "no block due date" blank by default, which the spec allows
# but pysip2 0.1.0 refuses: this machine sends a date (two weeks on).
due = int(time.time()) + 14 * 24 * 3600
out["checkout"] = ask(sc.sip_checkout_request(item, nbDueDate=due), sc.sip_checkout_response)["fixed"]["Ok"]
out["renew"] = ask(sc.sip_renew_request(item, nbDuDate=due), sc.sip_renew_response)["fixed"]["Ok"]
out["checkin"] = ask(sc.sip_checkin_request(item), sc.sip_checkin_response)["fixed"]["Ok"]
out["end"] = ask(sc.sip_end_patron_session_request(), sc.sip_end_patron_session_response)["fixed"]["EndSession"]
sc.disconnect()
print(json.dumps(out), flush=True)
