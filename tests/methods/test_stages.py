"""t-SimCNE's three stages: output size, trainable parameters, optimiser contents, lr per stage."""

import lightning as L
import numpy as np
import pytest
import torch

from medviz.data.datamodule import ArrayDataModule
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.methods.stages import Stage
from medviz.runs.rebuild import build_method
from tests.helpers.config import TINY, compose_config
from tests.helpers.trainers import plain_trainer


class Recorder(L.Callback):
    """Snapshots what the module and optimiser look like in the first step of every epoch."""

    def __init__(self):
        self.epochs = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx:
            return
        optimiser = trainer.optimizers[0]
        in_optimiser = {id(p) for group in optimiser.param_groups for p in group["params"]}
        names = {id(p): n for n, p in module.named_parameters()}
        with torch.no_grad():
            out = module(batch[0][:2])
        self.epochs.append(
            dict(
                stage=int(module.stage_index),
                out_dim=out.shape[1],
                optimised={names[i] for i in in_optimiser},
                trainable={n for n, p in module.named_parameters() if p.requires_grad},
                lr=optimiser.param_groups[0]["lr"],
                optimiser_id=id(optimiser),
                backbone=[p.detach().clone() for p in module.backbone.parameters()],
                bn_stats=module.backbone.body[1].running_mean.clone(),
            )
        )


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    overrides = [*TINY, "schedule.epochs=[2,2,2]", "schedule.warmup_epochs=[1,0,1]"]
    cfg = compose_config(overrides, run_dir=tmp_path_factory.mktemp("run"))
    data = load_synthblood(n_images=96, seed=0)
    module = build_method(cfg, data.stats())
    recorder = Recorder()
    trainer = plain_trainer(module.total_epochs, [recorder])  # the method brings its own stage switch
    trainer.fit(module, datamodule=ArrayDataModule(data, batch_size=32))
    return module, recorder.epochs


def test_output_dims_and_stage_per_epoch(staged_run):
    _, epochs = staged_run
    assert [e["stage"] for e in epochs] == [0, 0, 1, 1, 2, 2]
    assert [e["out_dim"] for e in epochs] == [128, 128, 2, 2, 2, 2]


def test_stage2_trains_only_the_new_2d_layer_and_bn_stays_in_train_mode(staged_run):
    _, epochs = staged_run
    assert epochs[2]["optimised"] == {"head.to_2d.weight", "head.to_2d.bias"}
    assert epochs[2]["trainable"] == {"head.to_2d.weight", "head.to_2d.bias"}
    # Backbone weights do not move during stage 2 ...
    for before, after in zip(epochs[2]["backbone"], epochs[4]["backbone"], strict=True):
        assert torch.equal(before, after)
    # ... but BatchNorm running statistics still update (reference behaviour).
    assert not torch.equal(epochs[2]["bn_stats"], epochs[4]["bn_stats"])


def test_stage1_and_3_optimise_everything_but_the_unused_output_layer(staged_run):
    module, epochs = staged_run
    everything = {n for n, _ in module.named_parameters()}
    assert epochs[0]["optimised"] == everything - {"head.to_2d.weight", "head.to_2d.bias"}
    assert epochs[4]["optimised"] == everything - {"head.to_high.weight", "head.to_high.bias"}


def test_fresh_optimiser_and_lr_schedule_per_stage(staged_run):
    module, epochs = staged_run
    ids = [e["optimiser_id"] for e in epochs]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5]
    assert len({ids[0], ids[2], ids[4]}) == 3
    lr = module.lr  # 0.03 * 32 / 256
    assert lr == pytest.approx(0.00375)
    # epochs [2, 2, 2], warmup [1, 0, 1]: stage 2 decays over 1 + 2 - 0 = 3 table entries; stage 3 at lr / 1000.
    expected = [*reference_lrs(lr, 2, 1), *reference_lrs(lr, 2, 0), *reference_lrs(lr * 1e-3, 2, 1)]
    assert [e["lr"] for e in epochs] == pytest.approx(expected, abs=1e-12)
    assert epochs[3]["lr"] == pytest.approx(0.75 * lr)


def reference_lrs(peak: float, epochs: int, warmup: int) -> list[float]:
    """The reference code's per-epoch lr of one stage: a table of warmup ``linspace(0, peak, w)``
    then ``d = 1 + n - w`` cosine entries, read from its first entry."""
    decay = 1 + epochs - warmup
    table = np.hstack([np.linspace(0, peak, warmup), 0.5 * peak * (1 + np.cos(np.pi * np.arange(decay) / decay))])
    return table[:epochs].tolist()


@pytest.mark.parametrize(("epochs", "warmup"), [(30, 10), (1000, 10), (50, 0), (450, 10), (5, 1), (4, 2), (3, 5)])
def test_stage_lr_factor_is_the_reference_table(epochs, warmup):
    stage = Stage("s", epochs, 1.0, warmup, "high", "all")
    assert [stage.lr_factor(e) for e in range(epochs)] == pytest.approx(reference_lrs(1.0, epochs, warmup), abs=1e-12)


def test_stage1_of_30_epochs_ends_where_the_reference_ends():
    # batch 128: lr 0.015; the reference ends stage 1 of [30, 10, 20] at 3.3e-4 (a cosine over 21 entries).
    assert 0.015 * Stage("s", 30, 1.0, 10, "high", "all").lr_factor(29) == pytest.approx(3.33e-4, rel=0.01)


def test_every_stage_follows_the_reference_lr_epoch_by_epoch(tmp_path):
    """Through a real Trainer: the lr the optimiser holds at each epoch of each of the three stages."""
    cfg = compose_config([*TINY, "schedule.epochs=[4,3,4]", "schedule.warmup_epochs=[3,0,2]"], run_dir=tmp_path)
    data = load_synthblood(n_images=64, seed=0)
    module = build_method(cfg, data.stats())
    recorder = Recorder()
    plain_trainer(module.total_epochs, [recorder]).fit(module, datamodule=ArrayDataModule(data, batch_size=32))
    lr = module.lr
    expected = [*reference_lrs(lr, 4, 3), *reference_lrs(lr, 3, 0), *reference_lrs(lr * 1e-3, 4, 2)]
    assert [e["stage"] for e in recorder.epochs] == [0] * 4 + [1] * 3 + [2] * 4
    assert [e["lr"] for e in recorder.epochs] == pytest.approx(expected, abs=1e-12)


def test_final_module_is_in_stage_3(staged_run):
    module, _ = staged_run
    assert int(module.stage_index) == 2 and module.has_map
    # The stage index is the one saved stage flag; a fresh model restored from it is in stage 3.
    outside_the_network = {key for key in module.state_dict() if not key.startswith(("backbone.", "head."))}
    preprocessing = {
        f"preprocess.{name}"
        for name in ("mean", "std", "low", "high", "per_image", "batch_low", "batch_high", "batch_names_json")
    }
    assert outside_the_network == {"stage_index", "augment.fill", *preprocessing}
    assert {key.split(".")[1] for key in module.state_dict() if key.startswith("head.")} == {
        "hidden",
        "to_high",
        "to_2d",
    }
    fresh = build_method(compose_config([*TINY, "schedule.epochs=[2,2,2]"]), load_synthblood(n_images=96).stats())
    fresh.load_state_dict(module.state_dict())
    assert fresh.current_stage == 2 and fresh.stage.output == "2d"


class GradNormProbe(L.Callback):
    """Records the gradient norm the optimiser applies (after any clipping)."""

    def __init__(self):
        self.norms, self.largest = [], []

    def on_train_epoch_start(self, trainer, module):
        optimiser = trainer.optimizers[0]
        step = optimiser.step

        def recording_step(closure, **kwargs):
            # Lightning's closure runs forward, backward and clipping; record what it leaves.
            def recording_closure():
                loss = closure()
                grads = [p.grad for g in optimiser.param_groups for p in g["params"] if p.grad is not None]
                self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
                self.largest.append(max(g.abs().max().item() for g in grads))
                return loss

            return step(closure=recording_closure, **kwargs)

        optimiser.step = recording_step


def clipped_run(tmp_path, *overrides: str) -> GradNormProbe:
    cfg = compose_config([*TINY, "schedule.epochs=[1,1,1]", *overrides], tmp_path)
    data = load_synthblood(n_images=64, seed=0)
    module = build_method(cfg, data.stats())
    probe = GradNormProbe()
    plain_trainer(1, [probe]).fit(module, datamodule=ArrayDataModule(data, batch_size=32))
    return probe


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_is_an_option_off_by_default(clip, tmp_path):
    probe = clipped_run(tmp_path, f"method.grad_clip={clip or 'null'}")
    if clip is None:
        assert max(probe.norms) > 1e-2  # unclipped gradients are far larger than the clip below
    else:
        assert max(probe.norms) <= clip * 1.001


def test_clipping_by_value_clips_each_element_as_the_pip_package(tmp_path):
    probe = clipped_run(tmp_path, "method.grad_clip=1e-4", "method.grad_clip_algorithm=value")
    assert max(probe.largest) <= 1e-4 * 1.001
    assert min(probe.norms) > 1e-3  # the norm is not what was clipped: many elements sit at the limit


def test_an_unknown_clipping_algorithm_is_refused(tmp_path):
    cfg = compose_config([*TINY, "method.grad_clip=4", "method.grad_clip_algorithm=elementwise"], tmp_path)
    with pytest.raises(ConfigError, match="grad_clip_algorithm=elementwise is not known; choose norm"):
        build_method(cfg, load_synthblood(n_images=64).stats())
