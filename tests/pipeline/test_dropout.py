"""GlobalBatchDropout: masks per global batch, so 1 and N processes draw the same dropout; nn.Dropout's law."""

from __future__ import annotations

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cleanfit.data.batches import Batches
from cleanfit.pipeline.config import Config
from cleanfit.pipeline.dropout import GlobalBatchDropout, rank_rows
from cleanfit.pipeline.model import MLP, build_model


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), per_rank=st.integers(1, 6), world=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_the_ranks_slices_of_the_masks_are_the_one_process_masks(n: int, per_rank: int, world: int, seed: int) -> None:
    """Real Batches cut each global batch (a partial last one as evenly as possible, empty shares included);
    each rank's dropout output is its rows of what one process computes on the whole global batch."""
    x = torch.randn(n, 5)
    global_batch = per_rank * world
    layout = (n, global_batch)
    single = GlobalBatchDropout(0.4, seed=seed, layer=1, layout=layout, rank=0, world_size=1)
    ranks = [GlobalBatchDropout(0.4, seed=seed, layer=1, layout=layout, rank=r, world_size=world) for r in range(world)]
    one = Batches(x, global_batch, shuffle=True, seed=seed, rank=0, world_size=1)
    shares = [Batches(x, per_rank, shuffle=True, seed=seed, rank=r, world_size=world) for r in range(world)]
    for _ in range(2):  # two epochs: the forward counter goes on across the epoch's end
        for whole, *parts in zip(one, *shares):
            expected = single(whole)
            got = torch.cat([layer(part) for layer, part in zip(ranks, parts)])
            assert torch.equal(got, expected)
    assert {int(layer.counter) for layer in ranks} == {int(single.counter)} == {2 * len(one)}


@given(n=st.integers(1, 50), global_batch=st.integers(1, 12), world=st.integers(1, 3), batch=st.integers(0, 30))
def test_rank_rows_tile_the_global_batch(n: int, global_batch: int, world: int, batch: int) -> None:
    rows = [rank_rows(batch, (n, global_batch), r, world) for r in range(world)]
    size = rows[0][0]
    assert [lo for _, lo, _ in rows] == [0] + [hi for _, _, hi in rows[:-1]] and rows[-1][2] == size
    assert max(hi - lo for _, lo, hi in rows) - min(hi - lo for _, lo, hi in rows) <= 1


def test_on_one_process_it_has_nn_dropouts_law() -> None:
    torch.manual_seed(0)
    x = torch.ones(2000, 50)
    ours = GlobalBatchDropout(0.3, seed=5)(x)
    theirs = nn.Dropout(0.3)(x)
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist()) == {0.0, torch.tensor(1 / 0.7).item()}
    zeros = (ours == 0).float().mean().item()
    assert abs(zeros - 0.3) < 0.01  # 100,000 Bernoulli(0.3) draws: the standard error is 0.0015
    assert abs(ours.mean().item() - 1.0) < 0.02  # scaled by 1 / (1 - p): the mean is kept


def test_masks_differ_per_forward_layer_and_seed_and_the_gradient_is_the_mask() -> None:
    x = torch.ones(64, 32, requires_grad=True)
    a, b = GlobalBatchDropout(0.5, seed=1), GlobalBatchDropout(0.5, seed=1, layer=1)
    first, second = a(x), a(x)
    assert not torch.equal(first, second)
    assert not torch.equal(first, b(x))
    assert not torch.equal(first, GlobalBatchDropout(0.5, seed=2)(x))
    assert torch.equal(first, GlobalBatchDropout(0.5, seed=1)(x))  # a pure function of (seed, counter, layer)
    first.sum().backward()
    assert torch.equal(x.grad, first.detach())


def test_eval_mode_is_the_identity_and_draws_nothing() -> None:
    layer = GlobalBatchDropout(0.5, seed=0).eval()
    x = torch.randn(8, 3)
    assert layer(x) is x and int(layer.counter) == 0


def test_the_counter_is_in_the_state_so_a_resume_draws_the_next_mask() -> None:
    model = MLP(4, 2, hidden=[16, 8], dropout=0.2, seed=3, layout=(40, 8))
    x = torch.randn(8, 4)
    for _ in range(3):
        model(x)
    state = copy.deepcopy(model.state_dict())
    assert int(state["2.counter"]) == 3 and int(state["5.counter"]) == 3
    resumed = MLP(4, 2, hidden=[16, 8], dropout=0.2, seed=3, layout=(40, 8))
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x), model(x))
    old = {k: v for k, v in state.items() if not k.endswith("counter")}  # a model.pt from before the counter
    MLP(4, 2, hidden=[16, 8], dropout=0.2).load_state_dict(old)


def test_build_model_gives_the_mlp_the_runs_seed_and_layout_and_leaves_a_factory_alone(tmp_path) -> None:
    config = Config.model_validate({"data": {"path": "t.csv", "target": "y"}, "train": {"batch_size": 16, "seed": 9}})
    model = build_model(config, 3, 2, train_rows=100)
    layers = [m for m in model.modules() if isinstance(m, GlobalBatchDropout)]
    assert [(m.seed, m.layer, m.layout, m.p) for m in layers] == [(9, 0, (100, 16), 0.1), (9, 1, (100, 16), 0.1)]
    (tmp_path / "own.py").write_text(
        "from torch import nn\n"
        "def factory(n_features, n_outputs):\n"
        "    return nn.Sequential(nn.Linear(n_features, 4), nn.Dropout(0.1), nn.Linear(4, n_outputs))\n"
    )
    config = Config.model_validate({"data": {"path": "t.csv", "target": "y"}, "model": {"module": "own:factory"}})
    own = build_model(config, 3, 2, base_dir=tmp_path, train_rows=100)
    assert isinstance(own[1], nn.Dropout) and not any(isinstance(m, GlobalBatchDropout) for m in own.modules())
