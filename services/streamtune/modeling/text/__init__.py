"""The text family: a Hugging Face sequence classifier fine-tuned online (LoRA or full) on
(item text, context) pairs; the first implementation of :class:`streamtune.modeling.family.ModelFamily`."""
