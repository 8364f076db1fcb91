"""bf16 against fp32 step time on a GPU, through cleanfit.Trainer, beside a hand-written loop.

A model where precision matters: an MLP of 8192 features with 4 hidden layers of 8192, batch 1024
(matrix products dominate). fp32 uses full fp32 matmuls (PyTorch's default, TF32 off); bf16 runs the
forward pass and loss under autocast. Each row times the same number of optimizer steps after a
warm-up, with a CUDA synchronise before reading the clock. Needs a CUDA GPU.

    python benchmarks/bench_precision_gpu.py
"""

from __future__ import annotations

import time

import torch

import cleanfit as cf

D, HIDDEN, LAYERS, BATCH, STEPS = 8192, 8192, 4, 1024, 30


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    width = D
    for _ in range(LAYERS):
        layers += [torch.nn.Linear(width, HIDDEN), torch.nn.GELU()]
        width = HIDDEN
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH * STEPS, D, generator=g)
    y = torch.randint(0, 10, (BATCH * STEPS,), generator=g)
    return x.cuda(), y.cuda()


def _trainer_rate(precision: str, x, y) -> float:
    model = _model()
    trainer = cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-4), loss=torch.nn.functional.cross_entropy,
                         device="cuda", precision=precision, progress=False, report=False)
    warm = cf.Batches((x[: BATCH * 3], y[: BATCH * 3]), BATCH, shuffle=False)
    trainer.fit(warm, epochs=1)
    batches = cf.Batches((x, y), BATCH, seed=0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.fit(batches, epochs=1)
    torch.cuda.synchronize()
    return STEPS / (time.perf_counter() - start)


def _hand_rate(dtype: torch.dtype | None, x, y) -> float:
    model = _model().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run(steps: int) -> None:
        perm = torch.randperm(len(y), device="cuda")
        for s in range(steps):
            idx = perm[s * BATCH : (s + 1) * BATCH]
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    run(3)
    torch.cuda.synchronize()
    start = time.perf_counter()
    run(STEPS)
    torch.cuda.synchronize()
    return STEPS / (time.perf_counter() - start)


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    x, y = _data()
    rows = {
        "cleanfit fp32": _trainer_rate("fp32", x, y),
        "cleanfit bf16": _trainer_rate("bf16", x, y),
        "hand loop fp32": _hand_rate(None, x, y),
        "hand loop bf16": _hand_rate(torch.bfloat16, x, y),
    }
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(f"MLP {D} -> {LAYERS} x {HIDDEN} -> 10, batch {BATCH}, AdamW, {STEPS} timed steps\n")
    print("| run | steps/s | ms/step |")
    print("| --- | ---: | ---: |")
    for name, rate in rows.items():
        print(f"| {name} | {rate:.1f} | {1000 / rate:.1f} |")
    print(f"\nbf16 / fp32 through cleanfit: {rows['cleanfit bf16'] / rows['cleanfit fp32']:.2f}x (goal >= 1.8x)")
    print(f"cleanfit / hand loop: fp32 {rows['cleanfit fp32'] / rows['hand loop fp32']:.3f}, "
          f"bf16 {rows['cleanfit bf16'] / rows['hand loop bf16']:.3f}")


if __name__ == "__main__":
    main()
