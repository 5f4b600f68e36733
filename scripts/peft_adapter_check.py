#!/usr/bin/env python3
"""Loads a kiln-written LoRA adapter with PEFT onto its Hugging Face base model and reports,
for every LoRA layer PEFT built, whether its lora_A/lora_B equal the tensors in
adapter_model.safetensors, PEFT's scaling, and the sum of |delta W| PEFT computes.

    python scripts/peft_adapter_check.py BASE_HF_DIR ADAPTER_DIR > report.json

Exits non-zero when PEFT reports missing or unexpected adapter keys, so a naming mismatch
cannot pass as an adapter that merely happens to be zero. Used by kiln-model's
`peft_loads_kiln_adapter` test; needs torch, transformers and peft
(scripts/setup-reference.sh installs them).
"""
import json
import sys
import warnings

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> int:
    base_dir, adapter_dir = sys.argv[1], sys.argv[2]
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(model, adapter_dir)
    key_warnings = [str(w.message) for w in caught if "adapter keys" in str(w.message)]
    if key_warnings:
        print("\n".join(key_warnings), file=sys.stderr)
        return 1

    stored = load_file(f"{adapter_dir}/adapter_model.safetensors")
    modules = {}
    for name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        # "base_model.model.model.layers.0.self_attn.q_proj" -> "model.layers.0.self_attn.q_proj"
        hf_name = name.removeprefix("base_model.model.")
        a = module.lora_A["default"].weight.detach()
        b = module.lora_B["default"].weight.detach()
        file_a = stored.get(f"{name}.lora_A.weight")
        file_b = stored.get(f"{name}.lora_B.weight")
        match = (
            file_a is not None
            and file_b is not None
            and torch.equal(a, file_a.to(a.dtype))
            and torch.equal(b, file_b.to(b.dtype))
        )
        delta = module.get_delta_weight("default").double()
        modules[hf_name] = {
            "factors_match": bool(match),
            "scaling": float(module.scaling["default"]),
            "delta_abs_sum": float(delta.abs().sum()),
        }
    json.dump({"modules": modules}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
