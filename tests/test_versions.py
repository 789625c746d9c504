"""The one kernel version order (harness/versions.py), as the catalog, bisect and reports use it."""

from __future__ import annotations

import random

import pytest

from harness.kernels.catalog import CatalogEntry, load_catalog
from harness.versions import debian_key, debian_name, kernel_order, name_revision, series
from tests.kernels.testlib import REPO


def test_order_across_series_and_builds():
    names = [
        "5.10.262-1",
        "6.1.192-1",
        "6.1.192-3",
        "6.1.192-10",
        "6.1.192",  # a name older catalogs and results used: after the builds it stood for
        "6.6",
        "6.12.107-1",
        "6.12.117-1.deb12u1",
        "6.12.117-1",
        "6.13",
        "7.2.6-1.bpo13+1",
        "7.2.13-1.bpo13+1",
        "7.2.13-1",
        "7.3.4-1.bpo13+1",
        "custom-build",
    ]
    shuffled = names[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled, key=kernel_order) == names


def test_a_bare_series_is_its_dot_zero_release():
    assert kernel_order("6.8") < kernel_order("6.8.1") < kernel_order("6.9")
    assert kernel_order("5.10") < kernel_order("5.10.251")


def test_releases_read_from_images_sort_by_their_version():
    assert kernel_order("6.18.44-fc-v669") > kernel_order("6.12.117")
    assert kernel_order("6.1.0-56-amd64") < kernel_order("6.2")


@pytest.mark.parametrize(
    "version,name",
    [
        ("6.12.117-1~deb12u1", "6.12.117-1.deb12u1"),
        ("7.3.4-1~bpo13+1", "7.3.4-1.bpo13+1"),
        ("6.1.192-3", "6.1.192-3"),
        ("5.10.262-1+b1", "5.10.262-1+b1"),
    ],
)
def test_a_name_is_its_version_with_tilde_written_dot_and_gives_the_revision_back(version, name):
    assert debian_name(version) == name
    assert name_revision(name) == version.partition("-")[2]


def test_debian_key_orders_as_dpkg():
    from debian.debian_support import Version

    versions = [
        "1.0~rc1-1",
        "1.0-1~bpo12+1",
        "1.0-1~deb12u1",
        "1.0-1",
        "1.0-1+b1",
        "1.0-1.1",
        "1.0-2",
        "1.0-10",
        "1.0a-1",
        "1.0.1-1",
        "1:0.1-1",
        "6.12.117-1~deb12u1",
        "6.12.117-1",
        "0",
        "",
    ]
    for a in versions:
        for b in versions:
            if a and b:
                expected = (Version(a) > Version(b)) - (Version(a) < Version(b))
                assert ((debian_key(a) > debian_key(b)) - (debian_key(a) < debian_key(b))) == expected, (a, b)
    assert debian_key("1.0") == debian_key("1.0-") != debian_key("1.0.0")


@pytest.mark.parametrize(
    "name,expected",
    [("6.12.117", "6.12"), ("5.10.0-46-amd64", "5.10"), ("7.3.4+deb13-amd64", "7.3"), ("6.8", "6.8")],
)
def test_series(name, expected):
    assert series(name) == expected


def test_series_of_a_non_version_is_an_error():
    with pytest.raises(ValueError, match="cannot read a kernel version from 'custom'"):
        series("custom")


def test_the_catalog_is_written_in_this_order_and_each_series_matches_its_name():
    debian = [e for e in load_catalog(REPO / "kernels" / "catalog.toml").entries if e.source == "debian"]
    assert [e.name for e in debian] == sorted((e.name for e in debian), key=kernel_order)
    assert all(series(e.name) == e.series for e in debian)
    assert CatalogEntry.sort_key(debian[0]) == kernel_order(debian[0].name)
