"""Where the Debian archive is: the host's apt sources in both formats, or the mirror option."""

from __future__ import annotations

import pytest

from harness.kernels import KernelError, aptsources
from harness.kernels.aptsources import Base

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: trixie

Types: deb
URIs: https://packages.example/node
Suites: nodistro
Components: main
"""

ONE_LINE = """\
# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://old.example/debian bullseye main
deb http://old.example/debian-security bullseye-security main  # trailing comment
deb-src http://old.example/debian bullseye main
deb http://ppa.example/ubuntu jammy main
"""


@pytest.fixture
def etc(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    monkeypatch.setenv("HARNESS_APT_ETC", str(tmp_path))
    monkeypatch.delenv("HARNESS_DEBIAN_MIRROR", raising=False)
    return tmp_path


def test_deb822_sources_give_main_then_security_archive(etc):
    (etc / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert aptsources.bases() == [
        Base("http://mirror.example/debian", security=False),
        Base("http://mirror.example/debian-security", security=True),
    ]


def test_one_line_format_in_sources_list_and_list_files(etc):
    (etc / "sources.list").write_text(ONE_LINE)
    (etc / "sources.list.d" / "extra.list").write_text("deb http://other.example/debian sid main\n")
    assert aptsources.bases() == [
        Base("http://old.example/debian", security=False),
        Base("http://other.example/debian", security=False),
        Base("http://old.example/debian-security", security=True),
    ]


def test_security_suites_try_the_security_archive_first(etc):
    (etc / "sources.list.d" / "debian.sources").write_text(DEB822)
    found = aptsources.bases()
    assert aptsources.for_suite("bullseye-security", found) == [
        "http://mirror.example/debian-security",
        "http://mirror.example/debian",
    ]
    assert aptsources.for_suite("trixie-backports", found)[0] == "http://mirror.example/debian"


def test_mirror_option_wins_over_apt_and_every_url_is_tried(etc):
    (etc / "sources.list.d" / "debian.sources").write_text(DEB822)
    found = aptsources.bases("http://a.example/debian, http://b.example/sec/")
    assert aptsources.for_suite("sid", found) == ["http://a.example/debian", "http://b.example/sec"]
    assert aptsources.for_suite("bookworm-security", found) == [
        "http://a.example/debian",
        "http://b.example/sec",
    ]


def test_mirror_from_the_environment(etc, monkeypatch):
    monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", "http://env.example/debian")
    assert [b.url for b in aptsources.bases()] == ["http://env.example/debian"] * 2


def test_no_debian_source_and_no_mirror_says_what_to_set(etc):
    (etc / "sources.list.d" / "node.sources").write_text(
        DEB822.split("Enabled: no")[0].replace("bookworm", "nodistro")
    )
    with pytest.raises(KernelError) as e:
        aptsources.bases()
    msg = str(e.value)
    assert "no Debian archive is configured" in msg and str(etc) in msg
    assert "set HARNESS_DEBIAN_MIRROR" in msg and "--debian-mirror" in msg


def test_unreadable_sources_file_is_skipped(etc):
    (etc / "sources.list.d" / "broken.sources").write_bytes(b"\xff\xfe\x00garbage")
    (etc / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert [b.url for b in aptsources.bases()][0] == "http://mirror.example/debian"
