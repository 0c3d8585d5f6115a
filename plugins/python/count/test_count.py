"""Unit tests of the count logic, natively: python -m unittest"""

import os
import unittest

from wasmpipe import testing

HERE = os.path.dirname(os.path.abspath(__file__))


class Count(unittest.TestCase):
    def setUp(self):
        testing.reset_state()
        self.plugin = testing.load(os.path.join(HERE, "count.py"))

    def values(self, keys):
        out = []
        for k in keys:
            out.extend(o.value.decode() for o in self.plugin.run(testing.record(key=k, value="v")))
        return out

    def test_counts_each_key_and_skips_records_without_one(self):
        self.assertEqual(self.values(["a", "b", None, "a", "a"]), ["1", "1", "2", "3"])
        self.assertEqual(
            testing.state_entries(),
            [(b"a", (3).to_bytes(8, "big")), (b"b", (1).to_bytes(8, "big"))],
        )

    def test_a_record_that_fails_leaves_no_state_behind(self):
        import types
        from wasmpipe import state

        failing = types.ModuleType("failing")

        def transform(record):
            state.put(record.key, b"written")
            raise ValueError("refused after writing")

        failing.transform = transform
        with self.assertRaises(ValueError):
            testing.load(failing).run(testing.record(key="a"))
        self.assertEqual(testing.state_entries(), [])
        self.assertEqual(self.values(["a"]), ["1"])

if __name__ == "__main__":
    unittest.main()
