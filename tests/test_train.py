import math

import pytest
import torch
from torch import nn

from vlmlearn.assets import load_weights, save_weights
from vlmlearn.optim import clamp_logit_scales_, param_groups
from vlmlearn.runtime import set_seed, set_train_mode
from vlmlearn.train import History, evaluate, load_checkpoint, minibatches, save_checkpoint, train


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _model():
    set_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 2))


def step(model, batch):
    x, y = batch
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}


def test_train_learns_and_records_history():
    x, y = _problem()
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    h = train(model, opt, step, minibatches(x, y, batch_size=32), steps=150, progress=False,
              eval_fn=lambda m: {"acc": (m(x).argmax(1) == y).float().mean()}, eval_every=50)
    assert h.train["step"] == list(range(1, 151)) and len(h.train["loss"]) == 150
    assert h.eval["step"] == [50, 100, 150]
    assert h.eval["acc"][-1] > 0.9 and h.train["loss"][-1] < h.train["loss"][0]
    assert h.stopped_by == "steps" and not model.training


def test_a_shown_run_ends_with_a_plain_line_of_its_final_state(capsys):
    x, y = _problem()
    model = _model()
    h = train(model, torch.optim.AdamW(model.parameters(), lr=1e-2), step, minibatches(x, y, batch_size=32), steps=12,
              eval_fn=lambda m: {"acc": (m(x).argmax(1) == y).float().mean()}, desc="probe")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    loss = sum(h.train["loss"][-10:]) / 10
    assert line.startswith("probe: 12 steps in ") and f"last 10 steps: loss {loss:.4g}, acc " in line
    assert line.endswith(f"eval at step 12: acc {h.eval['acc'][-1]:.4g}")
    h = train(model, torch.optim.AdamW(model.parameters()), step, minibatches(x, y, batch_size=32), steps=30,
              callbacks=[lambda s: setattr(s, "stop", s.step == 3)], desc="stopped")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("stopped: 3 steps in ") and line.endswith("(stopped by callback)")
    train(model, torch.optim.AdamW(model.parameters()), step, minibatches(x, y, batch_size=32), steps=2, progress=False)
    assert capsys.readouterr().out == ""  # no bar, no line (the capstone's grid trains hundreds of runs)
    assert History().summary() == "0 steps in 0.0 s"


def test_resume_matches_an_uninterrupted_run(tmp_path):
    x, y = _problem()

    def run(steps, ckpt=None):
        model = _model()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.9)
        train(model, opt, step, minibatches(x, y, batch_size=32, seed=3), steps=steps, scheduler=sched,
              checkpoint=ckpt, checkpoint_every=5, progress=False)
        return model

    straight = run(20)
    ckpt = tmp_path / "run.pt"
    run(12, ckpt)  # interrupted after 12 steps
    resumed = run(20, ckpt)  # a fresh process would do exactly this
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    step_, history = load_checkpoint(ckpt, _model())
    assert step_ == 20 and history.train["step"] == list(range(1, 21))


def test_time_budget_and_callback_stop():
    x, y = _problem()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = train(model, opt, step, minibatches(x, y, batch_size=32), steps=10**6, max_seconds=0.3, progress=False)
    assert h.stopped_by == "time" and 0.3 <= h.seconds < 5 and len(h.train["loss"]) < 10**6

    def stop_at_7(state):
        state.stop = state.step == 7

    h = train(model, opt, step, minibatches(x, y, batch_size=32), steps=100, callbacks=[stop_at_7], progress=False)
    assert h.stopped_by == "callback" and h.train["step"][-1] == 7


def test_iterable_data_is_cycled_and_nan_is_caught():
    x, y = _problem()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    h = train(model, opt, step, loader, steps=10, progress=False)  # 4 batches per epoch, cycled
    assert len(h.train["loss"]) == 10
    with pytest.raises(FloatingPointError, match="step 0"):
        train(model, opt, lambda m, b: (m(b[0]).sum() * float("nan"), {}), loader, steps=3, progress=False)


def test_minibatches_validate_and_cover_each_epoch():
    x, y = _problem()
    get = minibatches(x, y, batch_size=64, seed=1)
    seen = torch.cat([get(k)[1] for k in range(4)])
    assert seen.sum() == y.sum()  # one epoch = every sample once
    assert torch.equal(get(5)[0], minibatches(x, y, batch_size=64, seed=1)(5)[0])
    with pytest.raises(ValueError, match="same length"):
        minibatches(x, y[:10], batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(x, batch_size=1000)


def test_checkpoint_and_weights_load_safely(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pt", model, torch.optim.AdamW(model.parameters()), 3, History())
    torch.load(path, weights_only=True)  # plain tensors and containers only
    other = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 2))
    assert load_checkpoint(path, other)[0] == 3
    assert torch.equal(other[0].weight, model[0].weight)
    w = save_weights(model, tmp_path / "m.safetensors")
    fresh = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 2))
    assert torch.equal(load_weights(fresh, w)[3].bias, model[3].bias)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", model)


def test_evaluate_restores_train_mode():
    model = _model().train()
    assert evaluate(model, lambda m: {"training": float(m.training)}) == {"training": 0.0}
    assert model.training


def test_weight_decay_only_on_weight_matrices():
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.models import SmallCNN, TextTransformer

    model = DualEncoder(SmallCNN(image_size=16, widths=(8, 16), embed_dim=16),
                        TextTransformer(vocab_size=20, context_length=8, width=16, layers=1, heads=2, embed_dim=16),
                        logit_bias=-10.0)
    model.text_encoder.blocks.requires_grad_(False)  # frozen parameters belong to no group
    decay, no_decay = param_groups(model, 0.1, lr=1e-3)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0 and decay["lr"] == no_decay["lr"] == 1e-3
    name = {id(p): n for n, p in model.named_parameters()}
    decayed, kept = {name[id(p)] for p in decay["params"]}, {name[id(p)] for p in no_decay["params"]}
    assert {"logit_scale", "logit_bias", "text_encoder.token_embed.weight", "text_encoder.pos_embed"} <= kept
    assert not any(n.endswith("bias") for n in decayed)
    assert not any(".norm" in n or ".bn" in n for n in decayed), decayed  # norm layers: their weights are 1-d
    conv_and_linear = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert decayed == {f"{n}.weight" for n in conv_and_linear if not n.startswith("text_encoder.blocks")}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | kept == trainable and not decayed & kept
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)  # AdamW takes the groups as they are
    assert len(opt.param_groups) == 2
    head = list(model.image_encoder.proj.parameters())
    groups = param_groups(model, 0.1, params=head, lr=5.0)
    assert ([[name[id(p)] for p in g["params"]] for g in groups]
            == [["image_encoder.proj.weight"], ["image_encoder.proj.bias"]])
    with pytest.raises(ValueError, match="1 of the given params are not parameters of the DualEncoder"):
        param_groups(model, 0.1, params=[nn.Parameter(torch.ones(2))])
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(model.text_encoder.blocks, 0.1)


def test_logit_scale_is_clamped_in_place_after_each_step_and_keeps_its_gradient():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.logit_scale, self.max_logit_scale = nn.Linear(8, 2), nn.Parameter(torch.tensor(4.0)), 50.0

        def forward(self, x):
            return self.logit_scale.exp() * self.linear(x)

    model = Scaled()
    loss = model(torch.ones(1, 8)).sum()
    loss.backward()
    assert model.logit_scale.grad.abs() > 0  # exp(4) = 55 is above the cap: still a gradient
    x, y = _problem()

    def sharpen(m, b):  # pushes the scale up
        return -m.logit_scale + 0 * m(b[0]).sum(), {}

    train(model, torch.optim.SGD(model.parameters(), lr=1.0), sharpen, minibatches(x, y, batch_size=32), steps=3,
          progress=False)
    assert model.logit_scale.item() == pytest.approx(math.log(50.0))  # the module's own cap
    model.logit_scale.data.fill_(-1.0)
    clamp_logit_scales_(model)
    assert model.logit_scale.item() == 0.0  # never a temperature above 1


def test_frozen_submodules_stay_in_eval_mode():
    set_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model[:2].requires_grad_(False)  # a frozen encoder with BatchNorm, a trainable head
    before = model[1].running_mean.clone()
    x, y = torch.randn(64, 1, 8, 8) + 3.0, torch.randint(0, 2, (64,))
    train(model, torch.optim.SGD(model[3].parameters(), lr=0.1), step, minibatches(x, y, batch_size=16), steps=5,
          eval_fn=lambda m: {}, eval_every=2, progress=False)
    assert torch.equal(model[1].running_mean, before)  # the frozen statistics did not move
    set_train_mode(model)
    assert model.training and model[3].training and not model[0].training and not model[1].training
    model.requires_grad_(True)
    assert all(m.training for m in set_train_mode(model).modules())


def test_mixed_precision_follows_what_the_device_supports(monkeypatch):
    from vlmlearn.runtime import autocast_dtype

    assert autocast_dtype(torch.device("cpu")) is None and autocast_dtype(torch.device("mps")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(torch.device("cuda")) == torch.bfloat16  # Ampere and newer
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(torch.device("cuda")) == torch.float16   # older GPUs: fp16 with a GradScaler


def test_train_never_enters_autocast_where_no_precision_is_picked(monkeypatch):
    def forbidden(*args, **kwargs):  # torch.autocast("mps", ...) raises on torch < 2.5, even disabled
        raise AssertionError("train entered torch.autocast on a device where no mixed precision is used")

    monkeypatch.setattr(torch, "autocast", forbidden)
    x, y = _problem()
    h = train(_model(), torch.optim.SGD(_model().parameters(), lr=0.1), step, minibatches(x, y, batch_size=32),
              steps=3, progress=False)
    assert len(h.train["loss"]) == 3


def test_the_fp16_path_scales_unscales_and_still_learns(monkeypatch):
    import vlmlearn.train as train_module

    scaled = []
    real_scaler = torch.amp.GradScaler

    class Recording(real_scaler):  # on a machine without CUDA the scaler passes through; record its calls
        def scale(self, loss):
            scaled.append(loss.item())
            return super().scale(loss)

    monkeypatch.setattr(train_module, "autocast_dtype", lambda device: torch.float16)
    monkeypatch.setattr(torch.amp, "GradScaler", Recording)
    x, y = _problem()
    model = _model()
    h = train(model, torch.optim.AdamW(model.parameters(), lr=1e-2), step, minibatches(x, y, batch_size=32),
              steps=100, grad_clip=1.0, progress=False)
    assert len(scaled) == 100 and h.train["loss"][-1] < h.train["loss"][0]


def test_one_way_to_choose_the_device(monkeypatch):
    import vlmlearn

    monkeypatch.setenv("VLMLEARN_DEVICE", "meta")
    assert vlmlearn.device() == torch.device("meta")
    monkeypatch.delenv("VLMLEARN_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert vlmlearn.device().type in (expected, "mps") and vlmlearn.device("cpu") == torch.device("cpu")
