"""Unit tests of the redact logic, natively: python -m unittest"""

import os
import unittest

from wasmpipe import testing

HERE = os.path.dirname(os.path.abspath(__file__))


def run(config, value):
    plugin = testing.load(os.path.join(HERE, "redact.py"), config)
    [out] = plugin.run(testing.record(key="k", value=value, headers=[("h", "1")]))
    assert out.key == b"k" and out.headers == [("h", b"1")]
    return out.value.decode()


class Redact(unittest.TestCase):
    def test_masks_nested_and_wildcard_fields_keeping_order(self):
        got = run(
            {"mask": "user.email, cards.*.number"},
            '{"user":{"name":"Ann","email":"a@x.io"},"cards":[{"number":"4111","exp":"12/30"},{"number":"5500"}]}',
        )
        self.assertEqual(
            got,
            '{"user":{"name":"Ann","email":"***"},"cards":[{"number":"***","exp":"12/30"},{"number":"***"}]}',
        )

    def test_drops_fields_and_uses_a_custom_mask(self):
        got = run({"drop": "ssn", "mask": "name", "mask_with": "X"}, '{"name":"Ann","ssn":"1","age":3}')
        self.assertEqual(got, '{"name":"X","age":3}')

    def test_non_json_is_an_error_not_a_leak(self):
        with self.assertRaisesRegex(ValueError, "^value is not JSON"):
            run({"mask": "a"}, "not json")

    def test_config_errors_name_the_fix(self):
        with self.assertRaisesRegex(ValueError, "set 'mask'"):
            run({}, "{}")
        with self.assertRaisesRegex(ValueError, "'a..b'"):
            run({"mask": "a..b"}, "{}")
        with self.assertRaisesRegex(ValueError, "unknown config key 'masks'"):
            run({"masks": "a"}, "{}")


if __name__ == "__main__":
    unittest.main()
