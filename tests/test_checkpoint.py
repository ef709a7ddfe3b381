"""Checkpoints: the plain load into a fresh model, and every kind of corruption refused with one line."""

import zipfile
from pathlib import Path

import pytest
import torch

from drive_runner.checkpoint import load_checkpoint, payload_checksum, read_checkpoint
from drive_runner.errors import CheckpointError
from drive_runner.models import build_model
from drive_runner.pipeline import run
from tests.conftest import quick_cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run(quick_cfg("trainer.epochs=1"), run_dir)
    return run_dir / "checkpoints" / "final.pt"


def refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def resaved(checkpoint: Path, tmp_path: Path, change, keep_checksum: bool) -> Path:
    payload = torch.load(checkpoint, weights_only=True)
    change(payload)
    if not keep_checksum:
        payload["checksum"] = payload_checksum(payload)
    path = tmp_path / "changed.pt"
    torch.save(payload, path)
    return path


def test_a_sound_checkpoint_loads_into_a_fresh_model_the_plain_way(checkpoint):
    ckpt = torch.load(checkpoint, weights_only=True)
    model = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])  # strict: only the model's own tensors
    assert set(ckpt["masks"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    loaded, engine = load_checkpoint(checkpoint)
    assert engine.survivors() == sum(int(m.sum()) for m in ckpt["masks"].values())
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ckpt["state_dict"].items())


def test_a_flipped_bit_in_tensor_data_is_found_by_the_checksum(checkpoint, tmp_path):
    def flip(payload):
        raw = payload["state_dict"]["fc2.weight"].view(torch.int32)
        raw.view(-1)[123] ^= 1 << 3  # a low mantissa bit: the value stays finite
    message = refusal(resaved(checkpoint, tmp_path, flip, keep_checksum=True))
    assert "checksum mismatch" in message


def test_a_flipped_bit_in_the_file_itself_is_refused(checkpoint, tmp_path):
    data = bytearray(checkpoint.read_bytes())
    with zipfile.ZipFile(checkpoint) as archive:  # torch.save writes an uncompressed zip
        entry = max(archive.infolist(), key=lambda info: info.file_size)
        start = entry.header_offset + 30 + len(entry.filename) + len(entry.extra)
    data[start + entry.file_size // 2] ^= 0x08
    corrupted = tmp_path / "flipped.pt"
    corrupted.write_bytes(bytes(data))
    refusal(corrupted)


def test_a_nan_weight_is_refused_with_its_name(checkpoint, tmp_path):
    def poison(payload):
        payload["state_dict"]["fc1.weight"][0, 0] = float("nan")
    message = refusal(resaved(checkpoint, tmp_path, poison, keep_checksum=False))
    assert "fc1.weight holds NaN or infinite values" in message


def test_a_pruned_weight_that_is_not_zero_is_refused(checkpoint, tmp_path):
    def revive(payload):
        mask = payload["masks"]["fc1.weight"]
        index = tuple((~mask).nonzero()[0].tolist())
        payload["state_dict"]["fc1.weight"][index] = 0.5
    message = refusal(resaved(checkpoint, tmp_path, revive, keep_checksum=False))
    assert "pruned weights of fc1.weight are non-zero" in message


@pytest.mark.parametrize("content, reason", [(b"", "the file is empty"), (b"not a checkpoint", "UnpicklingError")])
def test_files_that_are_not_checkpoints_get_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    assert reason in refusal(path)


def test_a_torch_file_of_something_else_gets_one_line(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    assert "not a drive-runner checkpoint (it holds a Tensor)" in refusal(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
