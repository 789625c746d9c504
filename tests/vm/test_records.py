"""harness.vm.records: the warm VM's records, one encoding, and refusal of another version's."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.vm import records, warm
from harness.vm.seam import VMConfig

ROOT = Path(__file__).resolve().parents[2]


def a_record(**changes) -> records.Record:
    fields = dict(pid=os.getpid(), kernel="6.1.192", image="vmlinuz", accel="tcg", memory="1G", cpus=2)
    return records.Record(**{**fields, "idle_timeout": 900.0, **changes})


def test_each_record_comes_back_as_it_was_written(tmp_path):
    kernel = type("Kernel", (), {"name": "6.1.192", "image": tmp_path / "vmlinuz"})()
    cfg = VMConfig(results_dir=tmp_path / "results", pyzip=(tmp_path / "a.zip",))
    spec = records.Spec.of(kernel, tmp_path, 60.0, cfg)
    records.save(tmp_path / "spec.json", spec)
    assert records.load(records.Spec, tmp_path / "spec.json") == spec
    assert spec.vm_config(tmp_path) == dataclasses.replace(cfg, log_dir=tmp_path)
    answer = records.Answer(ok=False, record=a_record(runs=3, baseline={"prog": 2}), error="no", exited=True)
    assert records.decode(records.Answer, records.encode(answer)) == answer
    request = records.Request("run", client=12, idle_timeout=5.0)
    assert records.decode(records.Request, records.encode(request)) == request


def test_a_record_of_another_harness_version_is_refused_and_says_so(tmp_path):
    data = json.loads(records.encode(a_record()))
    for other in ({**data, "v": records.FORMAT + 1}, {"v": 1, "pid": 1, "kernel": "6.1.192"}):
        with pytest.raises(records.FormatError) as refused:
            records.decode(records.Record, json.dumps(other), "record.json")
        message = str(refused.value)
        assert f"record format {other['v']}" in message and f"reads format {records.FORMAT}" in message
        assert "another version of bpf-vm-harness" in message


def test_a_record_of_another_type_or_half_written_is_not_a_record():
    with pytest.raises(records.RecordError, match="is a Request record, expected Record"):
        records.decode(records.Record, records.encode(records.Request("stop")))
    with pytest.raises(records.RecordError, match="not a warm VM record"):
        records.decode(records.Record, '{"type": "Rec')
    with pytest.raises(records.RecordError, match="not a whole Record"):
        records.decode(records.Record, json.dumps({"type": "Record", "v": records.FORMAT, "pid": 1}))


def test_vm_list_leaves_another_versions_record_and_says_why(tmp_path):
    vm_dir = tmp_path / "vms" / "0123456789abcdef-0"
    vm_dir.mkdir(parents=True)
    old = {"v": 1, "pid": os.getpid(), "kernel": "6.1.192", "state": "ready"}  # as harness 1 wrote it
    (vm_dir / "record.json").write_text(json.dumps(old))
    refused: list[str] = []
    assert warm.kept_vms(tmp_path / "vms", refused) == []
    assert (vm_dir / "record.json").exists()  # its keeper may be running: not ours to remove
    assert len(refused) == 1 and str(vm_dir / "record.json") in refused[0]
    env = {**os.environ, warm.STATE_ENV: str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "harness", "vm", "list"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "no warm VMs" in listed.stdout
    assert "record format 1" in listed.stderr and "another version of bpf-vm-harness" in listed.stderr
