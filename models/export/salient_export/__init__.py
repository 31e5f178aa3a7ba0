"""salient_export: turn PyTorch checkpoints into salient model folders (model.safetensors + manifest.json)."""
