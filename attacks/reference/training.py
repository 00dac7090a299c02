"""Train K small reference models together (stacked + vmapped) or one after another, alike."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from attacks.device import autocast_for, to_device

# Model inputs (each [K', B, ...]) and labels [K', B] for one step of K' models.
Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of reference training; the audit spec gives them, seeded for reruns."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    seed: int = 0
    max_length: int = 128

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.max_length < 1:
            raise ValueError("epochs must be >= 0, batch_size and max_length >= 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay non-negative")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def minibatch_plan(masks: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, int]:
    """Record indices [steps, K, B] and the steps per epoch: model k walks through its own IN
    records in a fresh random order per pass (seeded by seed and k). All models take the same
    number of steps, an epoch being a pass over the largest training set, so they can be
    stepped together; B is capped at the smallest training set."""
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.dtype != np.bool_:
        raise ValueError(f"masks must be a bool array [K, n], got {masks.dtype} {masks.shape}")
    counts = masks.sum(axis=1)
    if counts.size == 0 or counts.min() == 0:
        raise ValueError("every reference model needs at least one training record")
    batch = int(min(config.batch_size, counts.min()))
    steps_per_epoch = math.ceil(int(counts.max()) / batch)
    steps = steps_per_epoch * config.epochs
    plan = np.empty((steps, masks.shape[0], batch), dtype=np.int64)
    for k, row in enumerate(masks):
        members = np.flatnonzero(row)
        rng = np.random.default_rng([config.seed, k])
        passes = math.ceil(steps * batch / members.size)
        stream = np.concatenate([rng.permutation(members) for _ in range(passes)] or [members[:0]])
        plan[:, k, :] = stream[: steps * batch].reshape(steps, batch)
    return plan, steps_per_epoch


@dataclass
class StackedModels:
    """K trained copies of one module as stacked parameters; queried in one vmapped call."""

    template: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    training_seconds: float
    trained_together: bool
    loss_history: np.ndarray  # mean training loss per epoch and model, [epochs, K]
    note: str | None = None  # why the models were not trained (or are not queried) together
    vmapped: bool = True

    @property
    def n_models(self) -> int:
        return len(next(iter(self.params.values())))

    def forward_all(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Outputs [K, B, ...] of every model on the same inputs, in inference mode (mixed
        precision on CUDA: callers take `.float()` of what they keep)."""
        self.template.eval()
        device = next(iter(self.params.values())).device
        with torch.inference_mode(), autocast_for(device):
            if self.vmapped:
                try:
                    return vmap(lambda p, b: functional_call(self.template, (p, b), inputs))(
                        self.params, self.buffers
                    )
                except (RuntimeError, NotImplementedError) as error:
                    # e.g. data-dependent control flow in forward: query the models in turn
                    self.vmapped = False
                    self.note = self.note or f"queried one after another ({_first_line(error)})"
            return torch.stack(
                [
                    functional_call(self.template, _slice(self.params, self.buffers, k), inputs)
                    for k in range(self.n_models)
                ]
            )


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit_models(
    models: Sequence[nn.Module],
    make_batch: Callable[[np.ndarray], Batch],
    plan: np.ndarray,
    steps_per_epoch: int,
    config: TrainConfig,
    *,
    together: bool,
    device: str,
    progress: Progress | None = None,
) -> StackedModels:
    """Train every model on its own minibatches with Adam and cross-entropy, the forward pass
    and loss under bf16 autocast on CUDA (float32 where the GPU lacks bf16, and on the CPU).

    Together: the K models' parameters are stacked (`stack_module_state`) and one vmapped
    `functional_call` steps them all, paying the per-operation overhead once instead of K
    times. One after another: the same minibatches and hyperparameters, so both give
    comparable models and a benchmark can time both. If the first vmapped step fails on this
    architecture, the models are trained one after another and `note` says why.
    """
    params, buffers = stack_module_state(models)
    return fit_stacked(
        models[0],
        params,
        buffers,
        make_batch,
        plan,
        steps_per_epoch,
        config,
        together=together,
        device=device,
        progress=progress,
    )


def fit_stacked(
    template: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    make_batch: Callable[[np.ndarray], Batch],
    plan: np.ndarray,
    steps_per_epoch: int,
    config: TrainConfig,
    *,
    together: bool,
    device: str,
    progress: Progress | None = None,
    loss: Loss = F.cross_entropy,
) -> StackedModels:
    """`fit_models` on K models given as stacked state: `params` and `buffers` [K, ...] (the
    initial values, leaves), called through `template` with `functional_call`.

    Whatever `template` holds beyond the stacked names (a frozen base model under K LoRA
    adapters) is shared by every model: held once, never stepped, and unbatched under vmap.
    One after another, model k is stepped on its own copy of its slice, with the same plan,
    seeds and optimizer as together, so the two modes give the same models up to rounding.
    """
    if together:
        try:
            return _fit_together(
                template,
                params,
                buffers,
                make_batch,
                plan,
                steps_per_epoch,
                config,
                device,
                progress,
                loss,
            )
        except _VmapUnsupported as error:
            stacked = _fit_sequential(
                template,
                params,
                buffers,
                make_batch,
                plan,
                steps_per_epoch,
                config,
                device,
                progress,
                loss,
            )
            stacked.note = f"trained one after another: vmap failed ({error})"
            return stacked
    return _fit_sequential(
        template,
        params,
        buffers,
        make_batch,
        plan,
        steps_per_epoch,
        config,
        device,
        progress,
        loss,
    )


class _VmapUnsupported(Exception):
    """The vmapped training step does not run on this architecture."""


def _fit_together(
    template: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    make_batch: Callable[[np.ndarray], Batch],
    plan: np.ndarray,
    steps_per_epoch: int,
    config: TrainConfig,
    device: str,
    progress: Progress | None,
    loss: Loss,
) -> StackedModels:
    optimizer = torch.optim.Adam(params.values(), lr=config.lr, weight_decay=config.weight_decay)

    def model_loss(
        p: dict[str, Any], b: dict[str, Any], inputs: tuple, labels: torch.Tensor
    ) -> Any:
        return loss(functional_call(template, (p, b), inputs), labels)

    # Dropout masks must differ between models, as they would if trained apart.
    batched_loss = vmap(model_loss, randomness="different")
    k = len(next(iter(params.values())))
    history = torch.zeros((config.epochs, k), dtype=torch.float64, device=device)
    template.train()
    with _seeded(config.seed, device):
        for step in range(len(plan)):
            inputs, labels = make_batch(plan[step])
            optimizer.zero_grad(set_to_none=True)
            try:
                with autocast_for(device, training=True):
                    losses = batched_loss(params, buffers, inputs, labels)
                # Each model's loss reaches only its own slice of the stacked parameters.
                losses.sum().backward()
            except (RuntimeError, NotImplementedError) as error:
                if step > 0:
                    raise
                raise _VmapUnsupported(_first_line(error)) from error
            optimizer.step()
            history[step // steps_per_epoch] += losses.detach()  # no per-step device sync
            if progress is not None:
                progress((step + 1) * k, len(plan) * k)
    return StackedModels(
        template=template,
        params={name: value.detach() for name, value in params.items()},
        buffers=buffers,
        training_seconds=0.0,
        trained_together=True,
        loss_history=(history / max(steps_per_epoch, 1)).cpu().numpy(),
    )


def _fit_sequential(
    template: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    make_batch: Callable[[np.ndarray], Batch],
    plan: np.ndarray,
    steps_per_epoch: int,
    config: TrainConfig,
    device: str,
    progress: Progress | None,
    loss: Loss,
) -> StackedModels:
    k = len(next(iter(params.values())))
    history = torch.zeros((config.epochs, k), dtype=torch.float64, device=device)
    trained_params, trained_buffers = [], []
    template.train()
    for index in range(k):
        own = {
            n: v[index].detach().clone().requires_grad_(v.requires_grad) for n, v in params.items()
        }
        own_buffers = {n: v[index].clone() for n, v in buffers.items()}  # running stats update
        optimizer = torch.optim.Adam(
            [v for v in own.values() if v.requires_grad],
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        with _seeded(config.seed + index, device):
            for step in range(len(plan)):
                inputs, labels = make_batch(plan[step, index : index + 1])
                with autocast_for(device, training=True):
                    output = functional_call(
                        template, (own, own_buffers), tuple(t[0] for t in inputs)
                    )
                    value = loss(output, labels[0])
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                history[step // steps_per_epoch, index] += value.detach()
                if progress is not None:
                    progress(index * len(plan) + step + 1, len(plan) * k)
        trained_params.append({n: v.detach() for n, v in own.items()})
        trained_buffers.append(own_buffers)
    return StackedModels(
        template=template,
        params={n: torch.stack([p[n] for p in trained_params]) for n in params},
        buffers={n: torch.stack([b[n] for b in trained_buffers]) for n in buffers},
        training_seconds=0.0,
        trained_together=False,
        loss_history=(history / max(steps_per_epoch, 1)).cpu().numpy(),
    )


def build_models(
    make_model: Callable[[], nn.Module], k: int, seed: int, device: str
) -> list[nn.Module]:
    """K models, the k-th initialised under seed + k, so reruns give the same references."""
    models = []
    for index in range(k):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)
            models.append(make_model().to(device))
    return models


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's RNG for a block (dropout) and restore the caller's state afterwards."""
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _slice(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], k: int):
    return {n: v[k] for n, v in params.items()}, {n: v[k] for n, v in buffers.items()}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------------------------------------
# Small torch classifiers on feature vectors (validation on scikit-learn data, benchmarks).


@dataclass
class ReferenceMLPs(StackedModels):
    """Reference models on feature vectors; `logits(x)` is [K, n, C]."""

    def logits(self, x: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
        device = next(iter(self.params.values())).device
        features = torch.as_tensor(np.asarray(x, dtype=np.float32))
        chunks = [  # kept on the device: one copy to the host at the end
            self.forward_all(to_device(features[start : start + batch_size], device)).float()
            for start in range(0, max(len(features), 1), batch_size)
        ]
        return torch.cat(chunks, dim=1).cpu().numpy()


def train_reference_mlps(
    make_model: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    config: TrainConfig,
    *,
    together: bool = True,
    device: str | None = None,
    progress: Progress | None = None,
) -> ReferenceMLPs:
    """Train K = len(masks) models from `make_model` (initialised under seed + k), model k on
    the records where masks[k] is True; `make_model()` must map [B, d] floats to logits."""
    started = time.perf_counter()
    device = device or default_device()
    features = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
    masks = np.asarray(masks)
    if features.ndim != 2 or labels.shape != (len(features),) or masks.shape[1:] != (len(x),):
        raise ValueError("need x [n, d], y [n] and masks [K, n] over the same n records")
    plan, steps_per_epoch = minibatch_plan(masks, config)
    models = build_models(make_model, len(masks), config.seed, device)

    def make_batch(indices: np.ndarray) -> Batch:
        index = torch.as_tensor(indices, device=device)
        return (features[index],), labels[index]

    stacked = fit_models(
        models,
        make_batch,
        plan,
        steps_per_epoch,
        config,
        together=together,
        device=device,
        progress=progress,
    )
    return ReferenceMLPs(
        template=stacked.template,
        params=stacked.params,
        buffers=stacked.buffers,
        training_seconds=time.perf_counter() - started,
        trained_together=stacked.trained_together,
        loss_history=stacked.loss_history,
        note=stacked.note,
    )
