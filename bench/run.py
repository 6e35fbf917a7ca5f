"""`make bench`: webhook latency, then Zendesk calls per message and per follow-up step,
then what reconciliation with Twilio costs (requests per run), then triage's speed at run
time, then the job pipeline against SPEC 12.

Prints both and writes them to bench/results/latest.json (gitignored).
Exit status 1 only when a half could not run at all; missing the latency
target is a result, shown in the output, not a failure of the bench.
"""
from __future__ import annotations

import signal
import sys
import time
import traceback

from bench import webhook_latency


def zendesk_calls() -> dict | None:
    """Zendesk API calls per message, from bench/zendesk_calls.py when it exists."""
    # ---- Zendesk half: bench/zendesk_calls.py exposes run() -> dict, e.g.
    # {"new_conversation": 3, "existing_per_message": 1.0, "burst_of_ten": 4}
    try:
        from bench.zendesk_calls import run as zendesk_run
    except ImportError as exc:
        if getattr(exc, "name", None) == "bench.zendesk_calls":
            print("zendesk call counts: not available")
        else:  # the module exists but something it imports does not
            print(f"zendesk call counts: not available ({exc})")
        return None
    result = zendesk_run()
    print("zendesk call counts:")
    width = max((len(str(k)) for k in (result or {})), default=0) + 2
    for key, value in (result or {}).items():
        print(f"  {key:<{width}}{value}")
    return result
    # ---- end of the Zendesk half


def main() -> int:
    signal.signal(signal.SIGTERM, webhook_latency._sigterm_to_exit)
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    failed = False

    try:
        latency = webhook_latency.run()
    except Exception as exc:  # report it, still try the other half
        traceback.print_exc()
        print(f"webhook latency: FAILED ({exc.__class__.__name__}: {exc})")
        results["webhook_latency"] = {"error": f"{exc.__class__.__name__}: {exc}"}
        failed = True
    else:
        print(webhook_latency.format_report(latency))
        results["webhook_latency"] = latency
    print()

    try:
        results["zendesk_calls"] = zendesk_calls()
    except Exception as exc:
        traceback.print_exc()
        print(f"zendesk call counts: FAILED ({exc.__class__.__name__}: {exc})")
        results["zendesk_calls"] = {"error": f"{exc.__class__.__name__}: {exc}"}
        failed = True

    from bench import followup_calls, pipeline, reconcile_cost, triage_speed

    for key, label, module in (("followup_calls", "follow-up call counts", followup_calls),
                               ("reconcile_cost", "reconciliation cost", reconcile_cost),
                               ("triage", "triage at run time", triage_speed),
                               ("pipeline", "the job pipeline", pipeline)):
        print()
        try:
            results[key] = module.run()
            print(module.format_report(results[key]))
        except Exception as exc:
            traceback.print_exc()
            print(f"{label}: FAILED ({exc.__class__.__name__}: {exc})")
            results[key] = {"error": f"{exc.__class__.__name__}: {exc}"}
            failed = True

    path = webhook_latency.write_json(results, "latest.json")
    print(f"\nresults written to {path.relative_to(webhook_latency.ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
