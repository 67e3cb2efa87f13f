# ruff: noqa  (red-team agent scripts, not project code)
# support: which tensors transformers loads when a safetensors file holds aliased names; run from /tmp/redteam_pt
import shutil, sys, torch, json
from pathlib import Path
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM
base = load_file("base/model.safetensors"); x = load_file("xcopy/json_field/model.safetensors")
k0 = "model.layers.0.self_attn.q_proj.weight"
def trial(name, tensors):
    d = Path("lab/m"); shutil.rmtree(d, ignore_errors=True); shutil.copytree("base", d)
    save_file(tensors, str(d/"model.safetensors"), metadata={"format":"pt"})
    m = LlamaForCausalLM.from_pretrained(d, use_safetensors=True, local_files_only=True)
    sd = m.state_dict()
    nx = sum(torch.equal(sd[k], x[k]) for k in base if k in sd); nb = sum(torch.equal(sd[k], base[k]) for k in base if k in sd)
    print(name, "params equal to X:", nx, "to base:", nb, "of", len(base))
order1 = dict(base); order1.update({k.replace("model.", "", 1): v for k, v in x.items() if k.startswith("model.")})
trial("base exact + X without 'model.' prefix", order1)
order2 = {k.replace("model.", "", 1): v for k, v in x.items() if k.startswith("model.")}; order2.update(base)
trial("X without prefix first, then base exact", order2)
o3 = dict(base); o3.update({"model."+k: v for k, v in x.items()})
trial("base exact + X with extra model. prefix", o3)
d=Path("lab/m"); shutil.rmtree(d); shutil.copytree("base", d)
save_file(order1, str(d/"model.safetensors"), metadata={"format":"pt"})
m = LlamaForCausalLM.from_pretrained(d, use_safetensors=True, local_files_only=True); sd=m.state_dict()
print([k for k in base if torch.equal(sd[k], base[k])])
