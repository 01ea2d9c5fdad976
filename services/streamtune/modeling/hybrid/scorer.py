"""The dense part of the hybrid model: how ID rows, running rates and text become one logit.

::

    logit = b + sum of row biases + <v_user, v_item + P t_item + w_item>   (factorisation, text-aware)
          + w . rates + u . t_item                                      (running like-rates, text prior)
          + <P t_item, Q (t_liked - t_disliked)>                        (text of the user's history)
          + MLP([v_user * (v_item + P t_item + w_item), rates, P t_item, t_item . t_liked, t_item . t_disliked])

``w_item`` (and its bias, among the row biases) pools the rows of the item text's words
(:mod:`~streamtune.modeling.hybrid.words`). ``rates`` are the logit of each side's smoothed
like-rate, the global rate's logit, the log-counts and the logits of each side's recent
like-rates (one per decay rate); ``w`` starts at (1, 1, -1, 0, ...), so an untrained model
scores exactly as the running like-rate counter (:mod:`streamtune.evaluation.popularity`) and
everything else learns the residual. Text terms (words included) vanish when the model is built
without text (the "ids" ablation) or a text is absent, and unknown rows are zero, so unknown
ids fall back to the rate prior and the text terms.

References
----------
Rendle, S. (2010). Factorization Machines. IEEE ICDM (the biased dot product).
Cheng, H.-T. et al. (2016). Wide & Deep Learning for Recommender Systems. DLRS (linear + MLP).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.words import WORDS


def rate_features(config: HybridConfig) -> int:
    """Width of the rates input: user and item lifetime rates, the global rate, two log-counts,
    user and item recent rates per decay, and the rates of kinds and user-kinds when on."""
    per_space = 1 + len(config.recent_decays)
    kinds = 2 * per_space if config.use_text and config.kind_bits > 0 else 0
    return 5 + 2 * len(config.recent_decays) + kinds


@dataclass
class DenseInputs:
    """One batch's inputs to :class:`HybridScorer` (B events)."""

    rows: dict[str, torch.Tensor]  # key space -> [B, 1 + factors] bias and factors (0 if unknown)
    # (for WORDS [W, 1 + factors], one row per word of the batch, pooled by the two below)
    rates: torch.Tensor  # [B, rate_features(config)]
    text_item: torch.Tensor | None = None  # [B, D] unit vectors (zeros when absent)
    text_liked: torch.Tensor | None = None  # [B, D]
    text_disliked: torch.Tensor | None = None  # [B, D]
    word_events: torch.Tensor | None = None  # [W] the event of each word row
    word_weights: torch.Tensor | None = None  # [W]


class HybridScorer(nn.Module):
    """The dense parameters (trained with AdamW) and the scoring formula above."""

    def __init__(self, config: HybridConfig) -> None:
        super().__init__()
        k = config.factors
        self.use_text = config.use_text
        self.bias = nn.Parameter(torch.zeros(1))
        rates = rate_features(config)
        self.rate_weights = nn.Parameter(torch.tensor([1.0, 1.0, -1.0] + [0.0] * (rates - 3)))
        mlp_in = k + rates
        if config.use_text:
            self.item_text = nn.Linear(config.text_dim, k, bias=False)  # P
            self.history_text = nn.Linear(config.text_dim, k, bias=False)  # Q
            # P starts as a scaled random orthonormal projection (Johnson-Lindenstrauss): a unit
            # text vector maps to about a unit vector, so user factors get a useful gradient
            # from a film's text from the first event. Q starts near zero so the bilinear
            # history term adds no noise before it has learned.
            nn.init.orthogonal_(self.item_text.weight, gain=config.text_gain * (config.text_dim / k) ** 0.5)
            nn.init.normal_(self.history_text.weight, std=config.init_std)
            self.text_bias = nn.Linear(config.text_dim, 1, bias=False)  # how liked such films are
            nn.init.zeros_(self.text_bias.weight)
            mlp_in += 2 + k
        self.mlp = nn.Sequential(nn.Linear(mlp_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        nn.init.zeros_(self.mlp[2].weight)  # start exactly at the counter; learn the residual
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, inputs: DenseInputs) -> torch.Tensor:
        """Logits, shape [B]."""
        rows = dict(inputs.rows)
        words = rows.pop(WORDS, None)
        if words is not None:  # each event's words pooled into one row
            weighted = words * inputs.word_weights.unsqueeze(1)
            rows[WORDS] = torch.zeros(len(inputs.rates), words.shape[1]).index_add(0, inputs.word_events, weighted)
        user_vec, item_vec = rows["users"][:, 1:], rows["items"][:, 1:]
        if words is not None:
            item_vec = item_vec + rows[WORDS][:, 1:]
        biases = sum(values[:, 0] for values in rows.values())
        logit = self.bias + biases + inputs.rates @ self.rate_weights
        extra = []
        if self.use_text and inputs.text_item is not None:
            projected = self.item_text(inputs.text_item)
            item_vec = item_vec + projected
            history = inputs.text_liked - inputs.text_disliked
            logit = (
                logit + (projected * self.history_text(history)).sum(1) + self.text_bias(inputs.text_item).squeeze(1)
            )
            extra = [
                projected,
                (inputs.text_item * inputs.text_liked).sum(1, keepdim=True),
                (inputs.text_item * inputs.text_disliked).sum(1, keepdim=True),
            ]
        interaction = user_vec * item_vec
        logit = logit + interaction.sum(1)
        hidden = torch.cat([interaction, inputs.rates, *extra], dim=1)
        return logit + self.mlp(hidden).squeeze(1)
