"""Synchronised BatchNorm for DDP on any device: batch statistics over the global batch of all processes.

``torch.nn.SyncBatchNorm`` only runs on GPUs; :func:`convert_sync_batchnorm` uses it on CUDA and
:class:`GlobalBatchNorm` elsewhere (CPU with gloo). In training mode with more than one process,
:class:`GlobalBatchNorm` normalises with the mean and the biased variance of the whole global batch,
obtained by two differentiable all-reduces (sum, then sum of squared deviations), and updates the running
statistics with the unbiased variance, as BatchNorm does on one process with the global batch. In eval
mode, or on one process, it is ``F.batch_norm``. Its state_dict keys are those of BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum over processes of the gradients (each process's
    output depends on every process's input)."""

    @staticmethod
    def forward(ctx, tensor, group):
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all processes (module docstring); works on the CPU with gloo."""

    def __init__(self, *args, process_group=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        world = dist.get_world_size(self.process_group) if dist.is_available() and dist.is_initialized() else 1
        if not self.training or world == 1:
            return super().forward(x)
        group = self.process_group or dist.group.WORLD
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        total = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]), group)
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims), group) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / (n - 1)) if n > 1 else var.detach()
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device_type: str, process_group=None) -> nn.Module:
    """Replace every BatchNorm layer of ``module``: torch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm`
    elsewhere. Parameters, buffers and ``requires_grad`` flags are carried over."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, process_group=process_group)
        new = new.to(device=next(iter(module.state_dict().values())).device)
        with torch.no_grad():
            if module.affine:
                new.weight.copy_(module.weight)
                new.bias.copy_(module.bias)
                new.weight.requires_grad_(module.weight.requires_grad)
                new.bias.requires_grad_(module.bias.requires_grad)
            if module.track_running_stats:
                new.running_mean.copy_(module.running_mean)
                new.running_var.copy_(module.running_var)
                new.num_batches_tracked.copy_(module.num_batches_tracked)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = convert_sync_batchnorm(child, device_type, process_group)
        if new_child is not child:
            setattr(module, name, new_child)
    return module
