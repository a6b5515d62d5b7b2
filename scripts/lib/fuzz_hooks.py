"""Schemathesis hooks for scripts/fuzz.

The fuzzing token may act for customer 1 only. A request whose generated Customer-Id is a
valid one (a positive int64) is sent for customer 1, so it reaches the job rules instead of
stopping at 403; an invalid Customer-Id is left as generated, so its 400 is still checked.
"""

import re

import schemathesis

POSITIVE_INT64 = re.compile(r"[1-9][0-9]{0,18}")
INT64_MAX = 2**63 - 1


@schemathesis.hook
def before_call(context, case, **kwargs):
    headers = case.headers or {}
    value = headers.get("Customer-Id")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and POSITIVE_INT64.fullmatch(value) and int(value) <= INT64_MAX:
        headers["Customer-Id"] = "1"
        case.headers = headers
