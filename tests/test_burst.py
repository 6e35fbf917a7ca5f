"""Ten texts from a new number within a second, two worker processes: one ticket, in order,
at most three ticket writes (SPEC 4)."""
import multiprocessing
import re
import time

from tests.conftest import always_open, post_twilio, sms, wait_for, worker_process
from tests.twilio_mock import TwilioMock
from tests.zendesk_mock import ZendeskMock

CUSTOMER = "+15557770123"


def test_burst_of_ten_with_two_workers_opens_one_ticket_in_order(client, conn, config, tmp_path,
                                                                 redis_server):
    zendesk = ZendeskMock(conn)
    zendesk.slow_down(0.15)  # a write is in flight while the next texts arrive
    cfg = always_open(config, tmp_path, coalesce_ms=400)  # the shipped default
    ctx = multiprocessing.get_context("fork")
    workers = []
    for _ in range(2):
        ready = ctx.Event()
        proc = ctx.Process(target=worker_process, args=(redis_server.url, cfg, ready))
        proc.start()
        assert ready.wait(10)
        workers.append(proc)
    try:
        texts = [f"message {i}: my dog ran away near the park" for i in range(10)]
        start = time.monotonic()
        for body in texts:
            assert post_twilio(client, "/twilio/sms", sms(CUSTOMER, body)).status_code == 200
            time.sleep(0.08)
        assert time.monotonic() - start < 1.5

        wait_for(lambda: conn.zcard("hotline:pending") == 0 and len(zendesk.all("ticket")) == 1
                 and sum(len(re.findall(r"message \d", c["body"])) for c in zendesk.all("comment")) == 10,
                 timeout=30, what="all ten texts to reach Zendesk")
        for proc in workers:
            proc.join(15)
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.terminate()

    [ticket] = zendesk.all("ticket")
    bodies = "\n".join(c["body"] for c in zendesk.comments(ticket["id"]))
    assert [int(n) for n in re.findall(r"message (\d)", bodies)] == list(range(10))
    print("zendesk calls:", zendesk.calls())
    assert zendesk.ticket_writes() <= 3, zendesk.calls()
    assert len(zendesk.all("user")) == 1
    assert len(TwilioMock(conn).sent()) == 1
    assert all(p.exitcode == 0 for p in workers)
