"""Reading what bench/pytorch needs without transformers, Lightning or the safetensors package:
a Lightning `.ckpt` (torch.load with an unpickler that turns classes we lack into dicts),
`.safetensors` files (a small struct + numpy reader that checks the layout before trusting it),
and the BridgeTowerConfig a checkpoint implies (shapes from its state_dict, the rest from its
stored hyper-parameters and the RoBERTa config.json upstream's constructor reads).
"""
import json
import pickle
import struct
import types
from typing import Dict

import numpy as np
import torch

from bridgetower_eager import BridgeTowerConfig, TextConfig, VisionConfig


class _Stand_in(dict):
    """A class the checkpoint names but this process lacks (e.g. a Lightning callback's state):
    kept as a dict of whatever state the pickle sets, so torch.load can finish."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)
        else:
            self["__state__"] = state


class _PermissiveUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stand_in,), {"__module__": f"stand_in.{module}"})


# torch.load accepts any module-like object with Unpickler and load (it subclasses our Unpickler).
permissive_pickle = types.ModuleType("permissive_pickle")
permissive_pickle.Unpickler = _PermissiveUnpickler
permissive_pickle.load = lambda f, **kw: _PermissiveUnpickler(f, **kw).load()
permissive_pickle.__name__ = "pickle"


def load_checkpoint(path: str) -> dict:
    return torch.load(path, map_location="cpu", pickle_module=permissive_pickle)


_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Header length, JSON header, then tensors laid out back to back: checks dtype, that
    shape x dtype size = byte length, and that offsets cover the data without gaps or overlaps."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = memoryview(blob)[8 + n:]
    out, end = {}, 0
    for name, meta in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if meta["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name} has dtype {meta['dtype']}, not one of {sorted(_DTYPES)}")
        dtype = np.dtype(_DTYPES[meta["dtype"]])
        start, stop = meta["data_offsets"]
        if start != end:
            raise ValueError(f"{path}: {name} starts at {start}, expected {end} (gap or overlap)")
        if stop - start != int(np.prod(meta["shape"], dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{path}: {name} holds {stop - start} bytes, shape {meta['shape']} x {dtype} needs another size")
        out[name] = torch.from_numpy(np.frombuffer(data[start:stop], dtype=dtype).reshape(meta["shape"]).copy())
        end = stop
    if end != len(data):
        raise ValueError(f"{path}: {len(data) - end} bytes after the last tensor")
    return out


def heads_from_loss_names(loss_names: dict, config: dict) -> Dict[str, int]:
    """bt_module.py: which heads `BTTransformer.__init__` creates for the stored loss_names."""
    on = lambda *names: any(loss_names.get(n, 0) > 0 for n in names)
    rules = {
        "mlm": (on("mlm"), 1),
        "itm": (on("itm", "itm_itc", "irtr_itm_itc"), 1),
        "itc": (on("itc", "itm_itc", "irtr_itm_itc"), config.get("contrastive_hidden_size", 256)),
        "vqa": (on("vqa"), config.get("vqav2_label_size", 3129)),
        "nlvr2": (on("nlvr2"), 1),
        "snli": (on("snli"), 1),
        "irtr": (on("irtr"), 1),
    }
    return {name: size for name, (wanted, size) in rules.items() if wanted}


def config_from_checkpoint(state_dict: Dict[str, torch.Tensor], hparams: dict, text_config: dict) -> BridgeTowerConfig:
    """Vision dimensions from the weights (as upstream's clip_model.build_model does), text ones
    from the RoBERTa config.json, the cross-modal ones and the heads from hyper_parameters.config."""
    c = hparams.get("config", hparams)
    sd = state_dict
    conv = sd["vit_model.visual.conv1.weight"]
    blocks = {k.split(".")[4] for k in sd if k.startswith("vit_model.visual.transformer.resblocks.")}
    grid = int(round((sd["vit_model.visual.positional_embedding"].shape[0] - 1) ** 0.5))
    vision = VisionConfig(
        width=conv.shape[0], num_layers=len(blocks), patch_size=conv.shape[2], image_size=grid * conv.shape[2],
        context_length=sd["vit_model.positional_embedding"].shape[0], text_width=sd["vit_model.positional_embedding"].shape[1],
    )
    t = text_config
    text = TextConfig(
        vocab_size=t["vocab_size"], hidden_size=t["hidden_size"], num_layers=t["num_hidden_layers"], num_heads=t["num_attention_heads"],
        intermediate_size=t["intermediate_size"], max_position_embeddings=t["max_position_embeddings"], type_vocab_size=t.get("type_vocab_size", 1),
        pad_token_id=t.get("pad_token_id", 1), layer_norm_eps=t.get("layer_norm_eps", 1e-12),
        hidden_dropout=t.get("hidden_dropout_prob", 0.1), attention_dropout=t.get("attention_probs_dropout_prob", 0.1),
    )
    return BridgeTowerConfig(
        text=text, vision=vision, hidden_size=c["hidden_size"], num_layers=c["num_layers"], num_heads=c["num_heads"],
        mlp_ratio=c["mlp_ratio"], drop_rate=c["drop_rate"], max_text_len=c["max_text_len"],
        heads=heads_from_loss_names(c["loss_names"], c), head_hidden_scale=c["head_hidden_scale"], nlvr2_drop_rate=c.get("nlvr2_drop_rate", 0.1),
    )
