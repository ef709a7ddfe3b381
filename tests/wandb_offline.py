"""Read back what an offline W&B run logged (wandb has no Python reader for offline runs).

The run's .wandb file is a LevelDB-style log: a 7-byte file header, then 32 KiB blocks of chunks,
each with a 7-byte header (CRC32C, length, type: 1 full, 2 first, 3 middle, 4 last) and a slice of a
serialised `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from google.protobuf.message import DecodeError

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    position, pending, payloads = 7, b"", []
    while position + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer: zero padding
            position += left_in_block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        chunk = data[position + CHUNK_HEADER : position + CHUNK_HEADER + length]
        position += CHUNK_HEADER + length
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            payloads.append(pending + chunk)
        elif kind == 0 and length == 0:  # zero padding up to the end of a block
            position += left_in_block - CHUNK_HEADER
    return [wandb_internal_pb2.Record.FromString(payload) for payload in payloads]


def finished_records(path: Path, timeout_s: float = 20.0) -> list[wandb_internal_pb2.Record]:
    """The records of a run file once W&B has written its exit record: wandb.finish() can return while
    W&B's service process still writes the last records, so a read may see a half-written tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            records = read_records(path)
            if any(record.WhichOneof("record_type") == "exit" for record in records):
                return records
        except DecodeError:
            pass
        assert time.monotonic() < deadline, f"{path} holds no complete run after {timeout_s:g} s"
        time.sleep(0.2)


def offline_run(run_dir: Path) -> dict:
    """The logged config, history rows, summary and artifacts of the single offline run in run_dir."""
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline W&B run in {run_dir}, found {files}"
    result = {"config": {}, "history": [], "summary": {}, "artifacts": [], "run": None, "files_dir": files[0].parent / "files"}
    for record in finished_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            result["run"] = record.run
            for item in record.run.config.update:
                result["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                result["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {}
            for item in record.history.item:
                _store(row, item)
            result["history"].append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _store(result["summary"], item)
        elif kind == "artifact":
            result["artifacts"].append(record.artifact)
    return result


def _store(target: dict, item) -> None:
    """An item has a plain key, or a nested key path (how W&B stores media such as tables)."""
    path = [item.key] if item.key else list(item.nested_key)
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)
