import pytest

from avrr.network import counted_address


@pytest.mark.parametrize("address, counted", [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same home, another address
    ("[2001:db8:1:3::9]", "2001:db8:1:3::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("unknown", "unknown"),
    ("", ""),
])
def test_an_ipv6_address_counts_as_its_64_and_anything_else_as_itself(address, counted):
    assert counted_address(address) == counted
