from datetime import date, timedelta

from desk.stats import SMALL_COUNT, finished_days, for_viewers, summary

DAY = date(2026, 12, 1)


def counts(**metrics):
    return [{"day": DAY, "channel": "telegram", "language": "ps",
             "metric": name.replace("__", ":"), "count": n} for name, n in metrics.items()]


def shown(rows):
    return {row["metric"]: row["count"] for row in for_viewers({"counts": rows,
                                                                 "waits": []})["counts"]}


def test_a_viewer_cannot_find_a_small_count_by_subtracting_it_from_its_sum():
    assert shown(counts(messages=20, topic__ask_cost=10, topic__greet=6,
                        topic__report_emergency=4, safety_messages=4)) == {
        "topic:ask_cost": 10, "topic:greet": 6}  # 20 - 16 would tell the emergencies
    assert shown(counts(tickets=12, tickets__normal=6, tickets__urgent=6)) == {
        "tickets": 12, "tickets:normal": 6, "tickets:urgent": 6}  # nothing small
    # Two small parts together are no small remainder: 3 and 3 stay apart.
    assert shown(counts(eligibility_finished=16, eligibility__likely=10,
                        eligibility__fear=3, eligibility__counsellor_first=3)) == {
        "eligibility_finished": 16, "eligibility:likely": 10}
    # Safety messages relayed to a counsellor are not counted apart: 9 beside 5 tells 4.
    assert shown(counts(safety_messages=9, topic__report_emergency=5)) == {
        "topic:report_emergency": 5}


def test_a_viewer_sees_no_wait_of_fewer_tickets_than_the_smallest_count():
    waits = [{"day": DAY, "channel": "telegram", "language": language, "urgency": "normal",
              "seconds": 60.0} for language, n in (("ps", SMALL_COUNT - 1), ("en", SMALL_COUNT))
             for _ in range(n)]
    assert {w["language"] for w in for_viewers({"counts": [], "waits": waits})["waits"]} == {
        "en"}


def test_a_viewer_s_share_not_understood_is_of_the_messages_shown():
    # Telegram: 7 messages (2 greetings hidden, so the 7 are hidden too), 5 not understood;
    # WhatsApp: 5 understood. A share of 5 over WhatsApp's 5 alone said 1.0.
    rows = counts(messages=7, topic__nlu_fallback=5, not_understood=5, topic__greet=2) + [
        dict(row, channel="whatsapp") for row in counts(messages=5, topic__ask_cost=5)]
    seen = summary(DAY, DAY, for_viewers({"counts": rows, "waits": []}))
    assert seen["fallback_rate"] == {"ps": 0.0}
    assert "not_understood" not in seen["totals"]


def test_a_viewer_sees_finished_days_only():
    rows = {"counts": counts(messages=6) + [dict(row, day=DAY + timedelta(days=1))
                                             for row in counts(messages=5)],
            "waits": [{"day": DAY + timedelta(days=1), "channel": "telegram",
                       "language": "ps", "urgency": "normal", "seconds": 60.0}]}
    assert finished_days(rows, DAY + timedelta(days=1)) == {
        "counts": counts(messages=6), "waits": []}
