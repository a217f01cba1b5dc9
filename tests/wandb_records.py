"""Read an offline W&B run back from its record file (``run-<id>.wandb``), record by record.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
32 KiB blocks of chunks, each ``crc32c (4) | length (2, little-endian) | type (1)`` and the
payload; a record is one FULL chunk or FIRST, MIDDLE..., LAST. Payloads are ``Record`` protocol
buffers of ``wandb.proto.wandb_internal_pb2``. Checksums are not verified.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

HEADER = b":W&B\xe1\xbe\x00"
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    assert data.startswith(HEADER), f"{path} is not a W&B record file"
    position, pending, out = len(HEADER), b"", []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # the block's tail is padding
            position += left
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        if length == 0 and kind == 0:
            position += left
            continue
        payload = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (FULL, FIRST):
            pending = payload
        else:
            pending += payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What a run wrote: identity, config, history rows, metric definitions, summary."""

    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[pb.MetricRecord] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    artifacts: list[pb.ArtifactRecord] = field(default_factory=list)
    used_artifacts: list[str] = field(default_factory=list)


def read_run(path: str | Path) -> OfflineRun:
    """The run of one ``offline-run-*`` directory (or its ``.wandb`` file)."""
    path = Path(path)
    if path.is_dir():
        (path,) = path.glob("*.wandb")
    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
            run.group, run.job_type = record.run.run_group, record.run.job_type
            run.tags = list(record.run.tags)
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "metric":
            run.metrics.append(record.metric)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "files":
            run.files.extend(f.path for f in record.files.files)
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
        elif kind == "use_artifact":
            run.used_artifacts.append(record.use_artifact.id or record.use_artifact.name)
    return run
