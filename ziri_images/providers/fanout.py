"""``n`` images from a provider that makes one image a call: ``n`` calls at once, under the one reservation.

The calls run side by side (threads: greenlets under gevent's workers), each within its own
call deadline, so ``n`` images take about as long as one. ``merge`` makes one answer of them:
the images of the calls that succeeded, with their usage (and what the provider said it billed)
summed; the calls that failed add what they were billed, if anything (a refused prompt Google
read and billed; an image Stability generated and filtered: ``billed_undelivered``), and nothing
otherwise. When no call succeeded, the first call's error is raised with every call's billing on
it. A failed call that may have billed without saying what (a 2xx answer that could not be read)
makes the usage unreadable, so the request is charged its reservation: the gateway never charges
less than the provider may have billed. For the same reason, what the provider says it billed is
summed only when every call it answered says it (an answered call that says nothing leaves the
sum unknown: the reservation is charged).
"""

import threading

from .base import ProviderError
from .base import ProviderResult

UNREADABLE = {}  # a usage without output_tokens: catalog/tokens.py cannot price it, the reservation is charged


def fan_out(call_one, count):
    """Return the outcomes of ``call_one(index)`` for ``count`` indexes, called at once: results or exceptions."""
    outcomes = [None] * count

    def run(index):
        try:
            outcomes[index] = call_one(index)
        except BaseException as error:  # each outcome is judged by merge, in the request's thread
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(1, count)]
    for thread in threads:
        thread.start()
    run(0)
    for thread in threads:
        thread.join()
    return outcomes


def add_usage(total, usage):
    """Return two usages (OpenAI's shape) added: counts summed, nested details too, lists joined."""
    if total is None:
        return usage
    if not isinstance(total, dict) or not isinstance(usage, dict) or total is UNREADABLE or usage is UNREADABLE:
        return UNREADABLE
    summed = dict(total)
    for name, value in usage.items():
        mine = summed.get(name)
        if isinstance(value, dict) and isinstance(mine, dict):
            summed[name] = add_usage(mine, value)
        elif isinstance(value, list) and isinstance(mine, list):
            summed[name] = mine + value
        elif isinstance(value, int) and isinstance(mine, int) and not isinstance(value, bool):
            summed[name] = mine + value
        elif name not in summed:
            summed[name] = value
    return summed


def merge(outcomes):
    """Return one ProviderResult of the calls' ``outcomes``, or raise (see the module's text)."""
    unexpected = [outcome for outcome in outcomes if isinstance(outcome, BaseException)
                  and not isinstance(outcome, ProviderError)]
    if unexpected:
        raise unexpected[0]  # the bill settles at the reservation (billing.Bill.call)
    results = [outcome for outcome in outcomes if isinstance(outcome, ProviderResult)]
    errors = [outcome for outcome in outcomes if isinstance(outcome, ProviderError)]
    usage, billed = None, None
    billed_images = sum(error.billed_images or 0 for error in errors)
    unknown_bill = any(result.provider_billed is None for result in results) or any(
        error.billed_amount is None and error.charges_reservation for error in errors)
    for error in errors:
        if error.billed_usage is not None:
            usage = add_usage(usage, error.billed_usage)
        elif error.charges_reservation:
            usage = UNREADABLE
        if error.billed_amount is not None:
            billed = (billed or 0.0) + error.billed_amount
    if unknown_bill:
        billed = None  # a partial sum would charge less than was billed
    if not results:
        first = errors[0]
        first.billed_usage = usage
        first.billed_amount = billed if billed is None else round(billed, 6)
        first.billed_images = billed_images or None
        first.may_have_billed = any(error.may_have_billed for error in errors)
        raise first
    images = []
    for result in results:
        images.extend(result.images)
        usage = add_usage(usage, result.usage if result.usage is not None else UNREADABLE)
        if not unknown_bill:
            billed = (billed or 0.0) + result.provider_billed
    first = results[0]
    body = {**first.body, "data": images, "usage": usage}
    return ProviderResult(body=body, provider_status=first.provider_status,
                          provider_request_id=first.provider_request_id,
                          provider_billed=billed if billed is None else round(billed, 6),
                          billed_undelivered=billed_images + sum(result.billed_undelivered for result in results))
