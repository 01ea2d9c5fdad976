"""The dense part of the hybrid model: how ID rows, running rates and text become one logit.

::

    logit = b + b_user + b_item + <v_user, v_item + P t_item>           (factorisation, text-aware)
          + w . rates                                                  (running like-rates)
          + <P t_item, Q (t_liked - t_disliked)>                       (text of the user's history)
          + MLP([v_user * (v_item + P t_item), rates, t_item . t_liked, t_item . t_disliked])

``rates`` are the logit of each side's smoothed like-rate, the global rate's logit and the
log-counts; ``w`` starts at (1, 1, -1, 0, 0), so an untrained model already scores as the
running like-rate counter and everything else learns the residual. Text terms vanish when
the model is built without text (the "ids" ablation) or a text is absent, and unknown rows
are zero, so unknown ids fall back to the rate prior and the text terms.

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

RATE_FEATURES = 5


@dataclass
class DenseInputs:
    """One batch's inputs to :class:`HybridScorer` (B events)."""

    user: torch.Tensor  # [B, 1 + k] bias and factors (zeros when unknown)
    item: torch.Tensor  # [B, 1 + k]
    rates: torch.Tensor  # [B, RATE_FEATURES]
    text_item: torch.Tensor | None = None  # [B, D] unit vectors (zeros when absent)
    text_liked: torch.Tensor | None = None  # [B, D]
    text_disliked: torch.Tensor | None = None  # [B, D]


class HybridScorer(nn.Module):
    """The dense parameters (trained with AdamW) and the scoring formula above."""

    def __init__(self, config: HybridConfig) -> None:
        super().__init__()
        k = config.factors
        self.use_text = config.use_text
        self.bias = nn.Parameter(torch.zeros(1))
        self.rate_weights = nn.Parameter(torch.tensor([1.0, 1.0, -1.0, 0.0, 0.0]))
        mlp_in = k + RATE_FEATURES
        if config.use_text:
            self.item_text = nn.Linear(config.text_dim, k, bias=False)  # P
            self.history_text = nn.Linear(config.text_dim, k, bias=False)  # Q
            for layer in (self.item_text, self.history_text):
                nn.init.normal_(layer.weight, std=config.init_std)
            mlp_in += 2
        self.mlp = nn.Sequential(nn.Linear(mlp_in, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        nn.init.zeros_(self.mlp[2].weight)  # start exactly at the counter; learn the residual
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, inputs: DenseInputs) -> torch.Tensor:
        """Logits, shape [B]."""
        user_bias, user_vec = inputs.user[:, 0], inputs.user[:, 1:]
        item_bias, item_vec = inputs.item[:, 0], inputs.item[:, 1:]
        logit = self.bias + user_bias + item_bias + inputs.rates @ self.rate_weights
        extra = []
        if self.use_text and inputs.text_item is not None:
            projected = self.item_text(inputs.text_item)
            item_vec = item_vec + projected
            history = inputs.text_liked - inputs.text_disliked
            logit = logit + (projected * self.history_text(history)).sum(1)
            extra = [
                (inputs.text_item * inputs.text_liked).sum(1, keepdim=True),
                (inputs.text_item * inputs.text_disliked).sum(1, keepdim=True),
            ]
        interaction = user_vec * item_vec
        logit = logit + interaction.sum(1)
        hidden = torch.cat([interaction, inputs.rates, *extra], dim=1)
        return logit + self.mlp(hidden).squeeze(1)
