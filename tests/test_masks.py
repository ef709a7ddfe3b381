"""The mask engine's invariants (docs/conventions.md)."""

import pytest
import torch
from torch import nn

from drive_runner.errors import ConfigError, MaskError
from drive_runner.pruning.masks import DIRECT_SEARCH_MAX, SAMPLE_SIZE, MaskEngine, find_prunable, keep_count, select_top


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))


def scores_like(engine: MaskEngine, fill=None, seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.full_like(p, fill) if fill is not None else torch.rand(p.shape, generator=generator)
        for name, p in engine.params.items()
    }


# mlp() has 20*30 + 30*10 = 900 prunable weights; the counts below are worked out by hand.
@pytest.mark.parametrize("fill", [None, 0.0, 1.0])
@pytest.mark.parametrize("density, survivors", [(0.5, 450), (0.1, 90), (0.013, 12), (0.0105, 9), (0.0, 0)])
def test_exact_count_global_even_with_tied_scores(fill, density, survivors):
    engine = MaskEngine(mlp())
    engine.prune_to_density(scores_like(engine, fill), density)
    assert engine.survivors() == survivors  # 900 * 0.013 = 11.7 -> 12; 900 * 0.0105 = 9.45 -> 9


@pytest.mark.parametrize("fill", [None, 0.0])
def test_exact_count_layerwise(fill):
    engine = MaskEngine(mlp(), scope="layerwise")
    engine.prune_to_density(scores_like(engine, fill), 0.3)
    assert [row["survivors"] for row in engine.layer_stats()] == [180, 90]  # 600 * 0.3, 300 * 0.3


@pytest.mark.parametrize("total, density, survivors", [(5, 0.5, 2), (7, 0.5, 4), (50200, 0.0125, 628), (3, 0.1, 0)])
def test_keep_count_rounds_half_to_even(total, density, survivors):
    # round(N * d) as Python rounds: 2.5 -> 2, 3.5 -> 4, 627.5 -> 628, 0.3 -> 0.
    assert keep_count(total, density) == survivors


def test_selection_keeps_the_highest_scores():
    masks = {"a": torch.ones(6, dtype=torch.bool)}
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.7, 0.2, 0.3])}
    new = select_top(scores, masks, 3, torch.Generator().manual_seed(0))
    assert new["a"].tolist() == [False, True, True, True, False, False]


def test_ties_are_broken_reproducibly_by_seed_and_not_by_position():
    masks = {"a": torch.ones(1000, dtype=torch.bool)}
    scores = {"a": torch.zeros(1000)}
    first = select_top(scores, masks, 100, torch.Generator().manual_seed(1))["a"]
    again = select_top(scores, masks, 100, torch.Generator().manual_seed(1))["a"]
    other = select_top(scores, masks, 100, torch.Generator().manual_seed(2))["a"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # Ties do not favour early entries: survivors are spread over the whole tensor.
    assert first[:500].sum() > 20 and first[500:].sum() > 20


def reference_select(scores: dict, masks: dict, keep: int, generator: torch.Generator) -> dict:
    """Brute force, for comparison: every score in float64, pruned ones at -inf, one full sort; the
    entries tied at the cut taken in concatenation order and chosen by the generator's permutation."""
    names = list(masks)
    alive = torch.cat([masks[name].reshape(-1) for name in names])
    values = torch.cat([scores[name].reshape(-1).double() for name in names]).masked_fill(~alive, float("-inf"))
    kept = torch.zeros_like(alive)
    if keep:
        threshold = values[torch.sort(values, descending=True, stable=True).indices[keep - 1]]
        kept = values > threshold
        tied = (values == threshold).nonzero().squeeze(1)
        kept[tied[torch.randperm(tied.numel(), generator=generator)[: keep - int(kept.sum())]]] = True
    return dict(zip(names, (part.reshape(masks[name].shape) for name, part in zip(names, kept.split([masks[n].numel() for n in names])))))


def random_case(generator: torch.Generator, sizes: list[int], kind: str, density: float):
    scores, masks = {}, {}
    for index, size in enumerate(sizes):
        shape = (size // 4, 4) if index % 2 else (size,)
        if kind == "continuous":
            values = torch.rand(shape, generator=generator)
        elif kind == "heavy ties":  # few distinct values: the cut falls inside a large tie
            values = torch.randint(0, 4, shape, generator=generator).float()
        else:  # "zeros and -inf": exact zeros, -inf on pruned entries, float32 beside float64
            values = torch.rand(shape, generator=generator) * (torch.rand(shape, generator=generator) < 0.5)
            values = values.double() if index % 2 else values
        masks[f"t{index}"] = torch.rand(shape, generator=generator) < density
        scores[f"t{index}"] = values.masked_fill(~masks[f"t{index}"], float("-inf")) if kind == "zeros and -inf" else values
    return scores, masks


@pytest.mark.parametrize("kind", ["continuous", "heavy ties", "zeros and -inf"])
@pytest.mark.parametrize("total, density, keeps", [(3_000, 0.7, ((0, 0), (0, 1), (1 / 3, 0), (1, -7), (1, 0))),
                                                   (40_000, 0.03, ((0, 1), (1 / 3, 0), (1, -7), (1, 0))),
                                                   (3 * DIRECT_SEARCH_MAX // 2, 0.8, ((1 / 3, 0), (1, -7)))])
def test_selection_equals_a_brute_force_sort_with_the_same_tie_breaking(kind, total, density, keeps):
    # Small cases search every entry, the large one goes through the sampled bracket; sparse masks are
    # read and written differently from dense ones. Each keep is a (fraction of the survivors, offset) pair.
    generator = torch.Generator().manual_seed(total + len(kind))
    sizes = [total // 2, total // 4, total // 8, total // 8]
    scores, masks = random_case(generator, sizes, kind, density)
    remaining = sum(int(m.sum()) for m in masks.values())
    assert (remaining > DIRECT_SEARCH_MAX) == (total > DIRECT_SEARCH_MAX)
    for keep in [int(fraction * remaining) + offset for fraction, offset in keeps]:
        new = select_top(scores, masks, keep, torch.Generator().manual_seed(keep))
        expected = reference_select(scores, masks, keep, torch.Generator().manual_seed(keep))
        assert all(torch.equal(new[name], expected[name]) for name in masks), keep
        assert sum(int(m.sum()) for m in new.values()) == keep
        assert all(not (new[name] & ~masks[name]).any() for name in masks)


@pytest.mark.parametrize("sampled_value", [0.0, 3.0])
def test_selection_is_exact_when_the_sample_misses_the_threshold(sampled_value):
    # The bracket samples every stride-th entry; here those all hold one value far below (or above)
    # every other score, so the bracket misses the threshold and has to be widened.
    size = 2 * DIRECT_SEARCH_MAX
    stride = size // SAMPLE_SIZE
    values = 1.0 + torch.rand(size, generator=torch.Generator().manual_seed(0))
    values[::stride] = sampled_value
    scores, masks = {"a": values}, {"a": torch.ones(size, dtype=torch.bool)}
    new = select_top(scores, masks, size // 2, torch.Generator().manual_seed(1))
    assert torch.equal(new["a"], reference_select(scores, masks, size // 2, torch.Generator().manual_seed(1))["a"])


def test_selection_reads_masks_that_start_anywhere_in_their_storage():
    # A sparse bool mask is read as 64-bit words, which needs an aligned start; a view that starts at
    # an odd offset is read entry by entry instead.
    storage = torch.zeros(1001, dtype=torch.bool)
    storage[1::37] = True
    scores, masks = {"a": torch.rand(1000, generator=torch.Generator().manual_seed(0))}, {"a": storage[1:]}
    new = select_top(scores, masks, 5, torch.Generator().manual_seed(0))
    assert torch.equal(new["a"], reference_select(scores, masks, 5, torch.Generator().manual_seed(0))["a"])


def test_mixed_precision_scores_are_compared_without_rounding():
    # 1 + 1e-12 is 1.0 in float32: a float32 comparison would tie the two tensors.
    scores = {"fine": torch.full((10,), 1.0 + 1e-12, dtype=torch.float64), "coarse": torch.ones(10)}
    masks = {name: torch.ones(10, dtype=torch.bool) for name in scores}
    for seed in range(5):
        new = select_top(scores, masks, 10, torch.Generator().manual_seed(seed))
        assert new["fine"].all() and not new["coarse"].any()


def test_masks_are_monotone_and_pruned_entries_never_return():
    engine = MaskEngine(mlp())
    previous = {k: v.clone() for k, v in engine.masks.items()}
    for step, density in enumerate([0.8, 0.5, 0.2, 0.05]):
        # Scores that would favour exactly the already-pruned entries if regrowth were possible.
        scores = {k: (~m).float() * 10 + torch.rand(m.shape) for k, m in engine.masks.items()}
        engine.prune_to_density(scores, density)
        for name, mask in engine.masks.items():
            assert not (mask & ~previous[name]).any(), f"step {step}: {name} regrew"
        previous = {k: v.clone() for k, v in engine.masks.items()}
    assert engine.survivors() == 45  # 900 * 0.05


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_abort_with_the_tensor_name(bad):
    engine = MaskEngine(mlp())
    scores = scores_like(engine)
    scores["2.weight"][0, 0] = bad
    with pytest.raises(MaskError, match="2.weight"):
        engine.prune_to_density(scores, 0.5)


def test_non_finite_scores_of_pruned_entries_are_ignored():
    engine = MaskEngine(mlp())
    engine.prune_to_density(scores_like(engine), 0.5)
    scores = {k: torch.where(m, torch.rand(m.shape), torch.tensor(float("inf"))) for k, m in engine.masks.items()}
    engine.prune_to_density(scores, 0.25)
    assert engine.survivors() == keep_count(engine.total(), 0.25)


def test_keeping_more_than_survive_is_an_error():
    engine = MaskEngine(mlp())
    engine.prune_to_density(scores_like(engine), 0.1)
    with pytest.raises(MaskError, match="only"):
        engine.prune_to_count(scores_like(engine), engine.survivors() + 1)


def train_steps(model, engine, steps=5, optimizer=None):
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    engine.attach(optimizer)
    for _ in range(steps):
        loss = model(torch.randn(8, 20)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("optimizer_name", ["sgd", "nesterov", "adam"])
def test_pruned_weights_stay_exactly_zero_through_training(optimizer_name):
    model = mlp()
    engine = MaskEngine(model)
    params = model.parameters()
    optimizer = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "nesterov": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
        "adam": lambda: torch.optim.Adam(params, lr=0.01, weight_decay=5e-4),
    }[optimizer_name]()
    train_steps(model, engine, optimizer=optimizer)  # momentum builds up on every weight first
    engine.prune_to_density(scores_like(engine), 0.2)
    for target in engine.targets:
        for value in optimizer.state[target.param].values():
            if torch.is_tensor(value) and value.shape == target.mask.shape:
                assert (value[~target.mask] == 0).all(), "optimizer state of pruned entries not cleared"
    train_steps(model, engine, steps=10, optimizer=optimizer)
    for target in engine.targets:
        assert (target.param[~target.mask] == 0).all()
        assert (target.param.grad[~target.mask] == 0).all()
    engine.verify(expected_survivors=keep_count(engine.total(), 0.2))


def test_every_way_a_mask_changes_reaches_the_gradient_and_the_weights():
    """The hooks multiply by a cached copy of each mask; a mask written in place by selection, by
    loading, by an ablation or by a dtype change of the model must never leave a stale copy behind."""
    model = mlp()
    engine = MaskEngine(model)
    optimizer = train_steps(model, engine, steps=1)  # all-ones masks: the hooks pass everything through
    assert all((target.param.grad != 0).all() for target in engine.targets)

    def pruned_entries_stay_zero():
        train_steps(model, engine, steps=2, optimizer=optimizer)
        for target in engine.targets:
            assert (target.param.grad[~target.mask] == 0).all()
            assert (target.param[~target.mask] == 0).all()
            assert (target.param.grad[target.mask] != 0).any()

    engine.prune_to_density(scores_like(engine, seed=1), 0.5)
    pruned_entries_stay_zero()
    engine.prune_to_density(scores_like(engine, seed=2), 0.2)
    pruned_entries_stay_zero()
    shuffled = {name: mask.flatten()[torch.randperm(mask.numel())].reshape(mask.shape) for name, mask in engine.masks.items()}
    engine.replace_masks(shuffled)
    pruned_entries_stay_zero()
    assert all(torch.equal(engine.masks[name], shuffled[name]) for name in shuffled)
    model.double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine.attach(optimizer)
    for _ in range(2):
        loss = model(torch.randn(8, 20, dtype=torch.float64)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for target in engine.targets:
        assert target.param.grad.dtype == torch.float64
        assert (target.param[~target.mask] == 0).all() and (target.param.grad[~target.mask] == 0).all()


def test_verify_fails_when_a_masked_weight_is_perturbed():
    model = mlp()
    engine = MaskEngine(model)
    engine.prune_to_density(scores_like(engine), 0.5)
    engine.verify(expected_survivors=keep_count(engine.total(), 0.5))
    target = engine.targets[0]
    index = (~target.mask).nonzero()[0]
    with torch.no_grad():
        target.param[tuple(index)] = 1e-3
    with pytest.raises(MaskError, match="non-zero"):
        engine.verify()


def test_verify_fails_on_a_wrong_survivor_count():
    engine = MaskEngine(mlp())
    engine.prune_to_density(scores_like(engine), 0.5)
    with pytest.raises(MaskError, match="expected"):
        engine.verify(expected_survivors=engine.survivors() - 1)


def test_prunable_set_exclusion_and_bias_option():
    model = mlp()
    assert [t.name for t in find_prunable(model)] == ["0.weight", "2.weight"]
    assert [t.name for t in find_prunable(model, exclude=["2.weight"])] == ["0.weight"]
    assert [t.name for t in find_prunable(model, include_bias=True)] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(ConfigError, match="prune.exclude.*nope"):
        find_prunable(model, exclude=["nope"])


def test_excluded_tensors_are_never_pruned():
    model = mlp()
    engine = MaskEngine(model, exclude=["2.weight"])
    engine.prune_to_density(scores_like(engine), 0.1)
    assert bool((model[2].weight != 0).all())
    assert not hasattr(model[2], "weight_mask")


def test_masks_move_with_the_model_but_stay_out_of_its_state_dict(tmp_path):
    model = mlp()
    engine = MaskEngine(model)
    engine.prune_to_density(scores_like(engine), 0.3)
    assert engine.masks["0.weight"].dtype == torch.bool
    assert dict(model.named_buffers())["0.weight_keep_mask"] is engine.masks["0.weight"]
    torch.save(model.state_dict(), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    mlp().load_state_dict(state)  # strict: a freshly built model takes it as it is


def test_torch_pruning_utilities_work_on_a_model_pruned_here():
    from torch.nn.utils import prune as torch_prune

    model = mlp()
    engine = MaskEngine(model)
    engine.prune_to_density(scores_like(engine), 0.5)
    torch_prune.l1_unstructured(model[0], "weight", amount=0.6)
    torch_prune.remove(model[0], "weight")
    assert float((model[0].weight == 0).float().mean()) == pytest.approx(0.6, abs=0.01)
