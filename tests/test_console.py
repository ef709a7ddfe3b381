"""Console output: plain lines off a terminal, rich progress bars on one, and the final table."""

import io

from rich.console import Console as RichConsole

from drive_runner.tracking.console import Console, format_epoch

EPOCH = {"phase": "train", "epoch": 3, "lr": 0.1, "train_loss": 0.5, "train_acc": 0.8, "test_top1": 0.75,
         "epoch_time_s": 1.25}
SUMMARY = {"method": "magnitude", "model": "lenet300", "dataset": "digits", "status": "completed", "test_acc": 0.93,
           "test_top5": 1.0, "target_sparsity": 0.9, "achieved_sparsity": 0.9, "params_nonzero": 10,
           "params_total": 100, "flops_sparse": 10, "flops_dense": 100, "collapsed_layers": ["fc2.weight"],
           "timings_s": {"total": 3.0}, "run_dir": "/tmp/x"}


def test_plain_lines_when_not_a_terminal(capsys):
    console = Console(interactive=False)
    console.start_phase("train", 2, 10)
    console.advance_batch()
    console.end_epoch(EPOCH)
    console.end_phase()
    out = capsys.readouterr().out.splitlines()
    assert out == ["[train] 2 epochs x 10 batches", format_epoch(EPOCH)]
    assert "test_acc 0.7500" in out[1] and "\x1b" not in "".join(out)


def test_progress_bars_on_a_terminal():
    console = Console(interactive=True)
    buffer = io.StringIO()
    console.rich = RichConsole(file=buffer, force_terminal=True, width=100)
    console.start_phase("warmup", 1, 3)
    for _ in range(3):
        console.advance_batch()
    console.end_epoch({**EPOCH, "phase": "warmup"})
    console.end_phase()
    assert "[warmup] epoch 3" in buffer.getvalue()
    assert console._progress is None


def test_summary_table_names_collapsed_layers():
    console = Console(interactive=False)
    buffer = io.StringIO()
    console.rich = RichConsole(file=buffer, width=120)
    console.summary_table(SUMMARY)
    text = buffer.getvalue()
    assert "0.9300" in text and "fc2.weight" in text and "completed" in text


def test_pruning_progress_off_a_terminal_is_a_line_every_few_seconds(capsys, monkeypatch):
    from drive_runner.tracking import console as console_module

    clock = iter([0.0, 1.0, 2.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(console_module.time, "monotonic", lambda: next(clock))
    console = Console(interactive=False)
    for step in range(1, 7):
        console.prune_step("step", step, 6, 1.0 - step / 10)
    assert capsys.readouterr().out.splitlines() == [
        "[prune] step 1/6, density 0.9",  # the first at once
        "[prune] step 4/6, density 0.6",  # 5 s after the last line
        "[prune] step 6/6, density 0.4",  # and the last
    ]


def test_pruning_progress_on_a_terminal_is_a_bar_that_leaves_its_last_line():
    console = Console(interactive=True)
    buffer = io.StringIO()
    console.rich = RichConsole(file=buffer, force_terminal=True, width=100)
    for step in range(1, 4):
        console.prune_step("level", step, 3, 0.8**step)
    assert console._pruning is None and "[prune] level 3/3, density 0.512" in buffer.getvalue()


def test_long_paths_in_the_summary_wrap_instead_of_being_cut():
    console = Console(interactive=False)
    buffer = io.StringIO()
    console.rich = RichConsole(file=buffer, width=80)
    path = "/very/long/" + "directory_name_" * 8 + "end"
    console.summary_table({**SUMMARY, "run_dir": path})
    text = "".join(line.strip(" │|┃") for line in buffer.getvalue().splitlines())
    assert "…" not in buffer.getvalue() and "end" in text
