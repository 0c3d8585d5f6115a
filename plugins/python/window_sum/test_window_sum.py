"""Unit tests of the window-sum logic and of wasmpipe.window, natively:
python -m unittest"""

import json
import os
import unittest

from wasmpipe import state, testing
from wasmpipe.window import LateRecord, Windows, duration

HERE = os.path.dirname(os.path.abspath(__file__))


def emitted(plugin, rows):
    out = []
    for key, t, value in rows:
        for o in plugin.run(testing.record(key=key, value=value, timestamp=t)):
            out.append((o.key.decode(), json.loads(o.value), o.timestamp))
    return out


class WindowSum(unittest.TestCase):
    def setUp(self):
        testing.reset_state()

    def test_emits_each_window_once_when_it_closes(self):
        plugin = testing.load(os.path.join(HERE, "window_sum.py"), {"size": "1m", "grace": "10s", "field": "amount"})
        got = emitted(plugin, [
            ("eu", 1_000, '{"amount":5}'),
            ("us", 2_000, '{"amount":1.5}'),
            ("eu", 59_000, '{"amount":2}'),
            ("eu", 65_000, '{"amount":4}'),
            # In grace: still [0, 60 000).
            ("eu", 30_000, '{"amount":10}'),
            ("us", 70_000, '{"amount":1}'),
        ])
        self.assertEqual(got, [
            ("eu", {"start": 0, "end": 60_000, "sum": 17.0, "count": 3}, 60_000),
            ("us", {"start": 0, "end": 60_000, "sum": 1.5, "count": 1}, 60_000),
        ])
        # Past the grace: the late record fails and leaves nothing behind.
        before = testing.state_entries()
        with self.assertRaisesRegex(LateRecord, "late record: key eu at 20000 ms"):
            plugin.run(testing.record(key="eu", value='{"amount":99}', timestamp=20_000))
        self.assertEqual(testing.state_entries(), before)

    def test_late_records_are_dropped_when_asked_and_bad_config_is_named(self):
        plugin = testing.load(os.path.join(HERE, "window_sum.py"), {"size": "10s", "late": "drop"})
        self.assertEqual(emitted(plugin, [("k", 25_000, "1"), ("k", 1_000, "2")]), [])
        with self.assertRaisesRegex(ValueError, "'late' = 'later'"):
            testing.load(os.path.join(HERE, "window_sum.py"), {"late": "later"})
        with self.assertRaisesRegex(ValueError, "'1 fortnight' is not a duration"):
            testing.load(os.path.join(HERE, "window_sum.py"), {"size": "1 fortnight"})

    def test_the_close_scan_starts_past_closed_windows(self):
        plugin = testing.load(os.path.join(HERE, "window_sum.py"), {"size": "1s"})
        emitted(plugin, [("a", 100, "1"), ("b", 200, "1"), ("a", 1_500, "1")])
        # [0, 1000) closed for a and b: where the next scan starts is past it.
        floor = state.get(b"\x00w")
        self.assertEqual(int.from_bytes(floor, "big") - (1 << 63), 1_001)
        self.assertEqual(emitted(plugin, [("a", 2_000, "1")]), [("a", {"start": 1000, "end": 2000, "sum": 1.0, "count": 1}, 2_000)])


class Helpers(unittest.TestCase):
    def setUp(self):
        testing.reset_state()

    def test_durations(self):
        self.assertEqual([duration(t) for t in ["1m", "10s", "500ms", "1h", "1m30s", "250"]],
                         [60_000, 10_000, 500, 3_600_000, 90_000, 250])

    def test_hopping_windows_hold_a_record_in_each_window_it_falls_in(self):
        w = Windows.hopping(10_000, 5_000)
        state._begin(0, 7_000)
        update = w.update(b"k", 7_000, lambda acc: b"x")
        state._end(False)
        self.assertEqual([(u.start, u.end) for u in update.updated], [(0, 10_000), (5_000, 15_000)])

    def test_sessions_grow_merge_and_close(self):
        w = Windows.session(10, grace=20, late="drop")
        count = lambda acc: ((int.from_bytes(acc, "big") if acc else 0) + 1).to_bytes(8, "big")
        merge = lambda a, b: (int.from_bytes(a, "big") + int.from_bytes(b, "big")).to_bytes(8, "big")

        def at(t):
            state._begin(0, t)
            u = w.update_session(b"k", t, count, merge)
            state._end(False)
            return u

        at(100)
        at(115)
        bridged = at(108)  # within 10 of both: one session [100, 125)
        self.assertEqual([(u.start, u.end, int.from_bytes(u.value, "big")) for u in bridged.updated], [(100, 125, 3)])
        closed = at(200).closed
        self.assertEqual([(c.start, c.end, int.from_bytes(c.value, "big")) for c in closed], [(100, 125, 3)])
        self.assertTrue(at(150).late)


if __name__ == "__main__":
    unittest.main()
