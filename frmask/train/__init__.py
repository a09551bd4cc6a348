"""The MaskInv trainer: iResNet backbones, margin heads, template-level distillation, datasets with mask
augmentation, the training loop (single process or DDP through torchrun), checkpoints and ONNX export."""
