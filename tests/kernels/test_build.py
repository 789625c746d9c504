"""Building a kernel tree with vng: the command, the environment, and the check that the config fragment stuck."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.kernels import KernelError, build

FRAGMENT = """\
# comment
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT_ALWAYS_ON=n
CONFIG_DEBUG_INFO_BTF=y
CONFIG_NET_SCH_INGRESS=m
"""


def test_packaged_fragment_has_the_bpf_options():
    opts = build.parse_config(build.default_fragment().read_text())
    for key in (
        "CONFIG_BPF_SYSCALL",
        "CONFIG_BPF_JIT",
        "CONFIG_BPF_EVENTS",
        "CONFIG_KPROBES",
        "CONFIG_KPROBE_EVENTS",
        "CONFIG_CGROUP_BPF",
        "CONFIG_CGROUPS",
        "CONFIG_NET_CLS_BPF",
        "CONFIG_NET_ACT_BPF",
        "CONFIG_NET_SCH_INGRESS",
        "CONFIG_DEBUG_INFO_BTF",
        "CONFIG_BPF_LSM",
        "CONFIG_FTRACE",
        "CONFIG_FUNCTION_TRACER",
        "CONFIG_9P_FS",
        "CONFIG_NET_9P_VIRTIO",
    ):
        assert opts[key] == "y", key
    assert opts["CONFIG_BPF_JIT_ALWAYS_ON"] == "n"


def test_build_command(tmp_path):
    frag = tmp_path / "f.config"
    assert build.build_command(frag, force_config=False) == ["vng", "--build", "--config", str(frag)]
    # an existing .config would make vng ignore the fragment without --force
    assert build.build_command(frag, force_config=True, verbose=True) == [
        "vng",
        "--build",
        "--config",
        str(frag),
        "--force",
        "--verbose",
    ]


def test_vng_env_puts_our_scripts_first():
    path = build.vng_env()["PATH"].split(os.pathsep)
    assert path[0] == str(Path(sys.executable).parent)


def test_all_options_stuck():
    config = (
        "CONFIG_BPF_SYSCALL=y\n# CONFIG_BPF_JIT_ALWAYS_ON is not set\n"
        "CONFIG_DEBUG_INFO_BTF=y\nCONFIG_NET_SCH_INGRESS=m\nCONFIG_OTHER=y\n"
    )
    assert build.options_not_applied(FRAGMENT, config) == []
    # "=n" is also satisfied by an option that is simply absent
    assert (
        build.options_not_applied(FRAGMENT, config.replace("# CONFIG_BPF_JIT_ALWAYS_ON is not set\n", ""))
        == []
    )


def test_options_that_did_not_stick_are_named():
    config = (
        "CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT_ALWAYS_ON=y\n"
        "# CONFIG_DEBUG_INFO_BTF is not set\nCONFIG_NET_SCH_INGRESS=y\n"
    )
    assert build.options_not_applied(FRAGMENT, config) == [
        "CONFIG_BPF_JIT_ALWAYS_ON=n (got: y)",
        "CONFIG_DEBUG_INFO_BTF=y (got: not set)",
        "CONFIG_NET_SCH_INGRESS=m (got: y)",
    ]


def _fake_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("")
    (tree / "Kconfig").write_text("")
    return tree


def test_build_fails_naming_options_that_did_not_stick(tmp_path, monkeypatch):
    """Run build() with a stand-in vng that writes a .config lacking BTF."""
    tree = _fake_tree(tmp_path)
    frag = tmp_path / "f.config"
    frag.write_text(FRAGMENT)
    calls = []

    def fake_run(cmd, cwd, env):
        calls.append((cmd, cwd))
        (Path(cwd) / ".config").write_text("CONFIG_BPF_SYSCALL=y\nCONFIG_NET_SCH_INGRESS=m\n")

        class R:
            returncode = 0

        return R()

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    with pytest.raises(KernelError, match=r"did not stick: CONFIG_DEBUG_INFO_BTF=y \(got: not set\)"):
        build.build(tree, fragment=frag)
    assert calls == [(["vng", "--build", "--config", str(frag)], tree)]


def test_build_reports_vng_failure_and_missing_tree(tmp_path, monkeypatch):
    with pytest.raises(KernelError, match="is not a kernel source tree"):
        build.build(tmp_path)
    tree = _fake_tree(tmp_path)

    class R:
        returncode = 2

    monkeypatch.setattr(build.subprocess, "run", lambda *a, **kw: R())
    with pytest.raises(KernelError, match="failed \\(vng exit 2\\).*dwarves"):
        build.build(tree)


@pytest.mark.skipif(
    not os.environ.get("HARNESS_TEST_BUILD_TREE"),
    reason="a real kernel build takes 10+ minutes here; set HARNESS_TEST_BUILD_TREE to an "
    "unpacked kernel source tree (e.g. from linux-source-6.1) to run it",
)
def test_real_build():
    tree = Path(os.environ["HARNESS_TEST_BUILD_TREE"])
    k = build.build(tree)
    assert k.source == "build" and k.image == tree.absolute() / "arch" / "x86" / "boot" / "bzImage"
    assert build.check_tree(tree, build.default_fragment()) == []
