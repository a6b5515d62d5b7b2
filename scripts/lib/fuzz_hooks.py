"""Schemathesis hooks for scripts/fuzz.

The fuzzing token may act for customer 1 only. A request whose generated Customer-Id is a
valid one (a positive int64) is sent for customer 1, so it reaches the job rules instead of
stopping at 403; an invalid Customer-Id is left as generated, so its 400 is still checked.

Likewise a valid generated job id (a UUID) becomes one of the real jobs of customer 1 that
scripts/fuzz created (JOBS_FUZZ_JOB_IDS), a valid webhook id one of its subscriptions
(JOBS_FUZZ_WEBHOOK_IDS), picked by the generated id so that requests spread
over them, and a token request naming a valid client id (a UUID) names the fuzzing client
with its secret (JOBS_FUZZ_CLIENT_ID, JOBS_FUZZ_CLIENT_SECRET): otherwise nearly every
generated request would end at 404 or 401.
"""

import os
import re
import uuid

import schemathesis

POSITIVE_INT64 = re.compile(r"[1-9][0-9]{0,18}")
INT64_MAX = 2**63 - 1
JOB_IDS = [job for job in os.environ.get("JOBS_FUZZ_JOB_IDS", "").split(",") if job]
WEBHOOK_IDS = [hook for hook in os.environ.get("JOBS_FUZZ_WEBHOOK_IDS", "").split(",") if hook]
# Subscriptions the fuzzer made itself (the stateful phase follows them to their
# operations): their ids are used as they are.
CREATED_WEBHOOKS = set()
CLIENT_ID = os.environ.get("JOBS_FUZZ_CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("JOBS_FUZZ_CLIENT_SECRET", "")


def as_uuid(value):
    """The UUID a generated value spells, if it is one."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, **kwargs):
    headers = case.headers or {}
    value = headers.get("Customer-Id")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and POSITIVE_INT64.fullmatch(value) and int(value) <= INT64_MAX:
        headers["Customer-Id"] = "1"
        case.headers = headers
    path_parameters = case.path_parameters or {}
    generated = as_uuid(path_parameters.get("jobId"))
    if generated is not None and JOB_IDS:
        path_parameters["jobId"] = JOB_IDS[generated.int % len(JOB_IDS)]
        case.path_parameters = path_parameters
    generated = as_uuid(path_parameters.get("webhookId"))
    if generated is not None and WEBHOOK_IDS and str(generated) not in CREATED_WEBHOOKS:
        path_parameters["webhookId"] = WEBHOOK_IDS[generated.int % len(WEBHOOK_IDS)]
        case.path_parameters = path_parameters
    body = case.body
    if isinstance(body, dict) and as_uuid(body.get("client_id")) is not None and CLIENT_ID:
        body["client_id"] = CLIENT_ID
        body["client_secret"] = CLIENT_SECRET


@schemathesis.hook
def after_call(context, case, response):
    if case.method.upper() == "POST" and case.path == "/v1/webhooks" and response.status_code == 201:
        try:
            CREATED_WEBHOOKS.add(str(uuid.UUID(response.json()["id"])))
        except (ValueError, KeyError, TypeError):
            pass
